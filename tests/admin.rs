//! The administrators' view over gRPC on both backends: a backlog computed
//! by hand (a late answer counts as answered but not on time), region
//! scoping, and masking.

mod common;

use tonic::Code;

use common::*;
use twoplace::domain::RegionCode;
use twoplace::proto::{self, admin_client::AdminClient, envelope::Body};

backend_tests!(
    the_backlog_adds_up_as_computed_by_hand,
    administrators_see_only_their_region_masked,
    metrics_count_what_happened_without_personal_data,
    a_trend_shows_each_day,
    a_township_office_has_its_own_backlog_and_trend,
    the_office_directory_names_offices_in_reports,
    a_database_from_before_the_tallies_counts_them_at_start,
);

const HUOQIU: &str = "341522"; // 六安市霍邱县

fn plain_registration(id: &str, resident_id: &str, origin: &str) -> proto::Envelope {
    let mut m = registration(id, DESTINATION, resident_id);
    if let Some(Body::Registration(r)) = &mut m.body {
        r.periodic_checks = false;
    }
    m.case_ref.as_mut().unwrap().origin_office = origin.into();
    m
}

async fn sent(
    client: &mut proto::exchange_client::ExchangeClient<tonic::transport::Channel>,
    m: proto::Envelope,
) {
    let o = publish(client, vec![m]).await;
    assert_eq!(
        status_of(&o[0]),
        proto::PublishStatus::Accepted,
        "{:?}",
        o[0].violations
    );
}

/// A region's backlog, as the administrator of province 34 sees it.
async fn backlog_of(server: &TestServer, region: &str) -> proto::BacklogResponse {
    server
        .admin_service()
        .await
        .backlog(proto::BacklogRequest {
            region: region.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// A region's trend by day, as the administrator of province 34 sees it.
async fn daily_trend_of(server: &TestServer, region: &str) -> proto::TrendResponse {
    server
        .admin_service()
        .await
        .trend(proto::TrendRequest {
            region: region.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

fn row<'a>(b: &'a proto::BacklogResponse, region: &str) -> &'a proto::BacklogRow {
    b.children.iter().find(|r| r.region == region).unwrap()
}

/// Tests that read the tallies from the changes writers recorded, and then
/// again once they are folded in: the folder is kept away until then.
fn unfolded() -> Options {
    Options {
        fold_interval: std::time::Duration::from_secs(3600),
        ..Options::default()
    }
}

async fn the_backlog_adds_up_as_computed_by_hand(backend: Backend) {
    let server = TestServer::start_opts(&backend, unfolded()).await;
    twoplace::pki::add_offices(&server.pki.dir, &[RegionCode::parse(HUOQIU).unwrap()]).unwrap();
    let mut jinan = server.office(ORIGIN).await;
    let mut huoqiu = server.office(HUOQIU).await;
    let mut minhang = server.office(DESTINATION).await;
    let a = zhang();
    // Born 1985-06-15, a woman, like the fixture person.
    let b = resident("34152219850615002");

    // Day 0: 金安 registers A and asks urgently about her; 霍邱 registers B.
    sent(&mut jinan, plain_registration("reg-a", &a, ORIGIN)).await;
    let ask = envelope(
        "ask",
        DESTINATION,
        &a,
        Body::VerificationRequest(proto::VerificationRequest {
            urgency: proto::Urgency::Urgent as i32,
            question: "?".into(),
            certificate_mismatch: false,
        }),
    );
    sent(&mut jinan, ask).await;
    sent(&mut huoqiu, plain_registration("reg-b", &b, HUOQIU)).await;
    // 闵行 confirms A at once, and acknowledges everything it received.
    let confirm = envelope(
        "conf-a",
        ORIGIN,
        &a,
        Body::RegistrationConfirmation(proto::RegistrationConfirmation {
            finding: proto::Finding::Found as i32,
            observed: Some(person("张三")),
            ..Default::default()
        }),
    );
    sent(&mut minhang, confirm).await;
    let last = inbox_all(&mut minhang).await.pop().unwrap().cursor;
    minhang
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: last,
            messages: vec![],
        })
        .await
        .unwrap();
    // Day 20: the urgent answer (due after 15 days) comes late.
    server.clock.advance(time::Duration::days(20));
    let answer = envelope(
        "ans",
        ORIGIN,
        &a,
        Body::VerificationReply(proto::VerificationReply {
            request_message_id: "ask".into(),
            answer: "属实".into(),
        }),
    );
    sent(&mut minhang, answer).await;
    // Day 40: B's confirmation (30 days) is overdue.
    server.clock.advance(time::Duration::days(20));

    let backlog = backlog_of(&server, "3415").await;
    assert_eq!(backlog.total.as_ref().unwrap().name, "六安市");
    let jinan_row = row(&backlog, ORIGIN);
    assert_eq!(jinan_row.name, "六安市金安区");
    // Owed to 金安: A's confirmation (on time, at once) and the answer
    // (20 days, late); both receipts were acknowledged on time.
    let owed = jinan_row.as_creditor.unwrap();
    assert_eq!((owed.open, owed.overdue), (0, 0));
    assert_eq!(
        owed.on_time_rate,
        Some(0.5),
        "a late answer counts as answered, not on time"
    );
    assert_eq!(owed.receipt_rate, Some(1.0));
    assert_eq!(owed.median_reply_seconds, Some(0.0));
    // Reply times are kept as a histogram: within 1 %.
    let p90 = owed.p90_reply_seconds.unwrap();
    assert!(
        (p90 - 20.0 * 86_400.0).abs() <= 0.01 * 20.0 * 86_400.0,
        "{p90}"
    );
    // 金安 owes receipts of the confirmation and the answer: never
    // acknowledged, overdue and escalated (3 days; 6 to escalate)… the
    // answer's only 20 days old: both are past 6 days.
    let owes = jinan_row.as_debtor.unwrap();
    assert_eq!((owes.open, owes.overdue, owes.escalated), (2, 2, 2));
    assert_eq!(owes.receipt_rate, Some(0.0));
    // Owed to 霍邱: B's confirmation, overdue, not escalated (60 days).
    let owed = row(&backlog, HUOQIU).as_creditor.unwrap();
    assert_eq!((owed.open, owed.overdue, owed.escalated), (1, 1, 0));
    assert_eq!(owed.on_time_rate, Some(0.0));
    assert_eq!(owed.receipt_rate, Some(1.0));
    // The total is the sum of its children.
    let total = backlog.total.as_ref().unwrap().as_creditor.unwrap();
    assert_eq!(total.open, 1);
    assert_eq!(total.on_time_rate, Some(1.0 / 3.0));

    // The province lists its cities.
    let province = server
        .admin_service()
        .await
        .backlog(proto::BacklogRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(province.total.unwrap().region, "34");
    assert_eq!(province.children.len(), 1);
    assert_eq!(province.children[0].region, "3415");

    // Once the sweeper has flagged what is overdue (counted from the
    // tallies, no longer from the obligations), the backlog is the same.
    let store = twoplace::store::connect(server.database_url())
        .await
        .unwrap();
    let report = store
        .sweep(
            &twoplace::domain::Policy::default(),
            twoplace::clock::Clock::now(server.clock.as_ref()),
            500,
            &twoplace::api::exchange::reminder_envelope,
        )
        .await
        .unwrap();
    assert!(report.overdue_reminders >= 3, "{report:?}");
    let swept = backlog_of(&server, "3415").await;
    assert_eq!(swept, backlog);

    // So far every count came from recorded changes; folded into the
    // stored tallies, they read the same.
    assert!(store.fold_tallies().await.unwrap() > 0);
    assert_eq!(store.fold_tallies().await.unwrap(), 0, "folded once");
    let folded = backlog_of(&server, "3415").await;
    assert_eq!(folded, backlog);
    server.finish().await;
}

async fn administrators_see_only_their_region_masked(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut jinan = server.office(ORIGIN).await;
    let a = zhang();
    sent(&mut jinan, plain_registration("reg-a", &a, ORIGIN)).await;
    server.clock.advance(time::Duration::days(40));

    let mut admin = server.admin_service().await;
    let denied = admin
        .backlog(proto::BacklogRequest {
            region: "31".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = AdminClient::new(server.office_channel(ORIGIN).await)
        .backlog(proto::BacklogRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        denied.code(),
        Code::PermissionDenied,
        "offices are not administrators"
    );

    // 闵行 owes the confirmation, but it is in 上海, not in 34.
    let overdue = admin
        .list_overdue(proto::ListOverdueRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        overdue
            .obligations
            .iter()
            .all(|o| o.debtor_office.starts_with("34"))
    );
    // An administrator of 上海 would see it, masked.
    twoplace::pki::init(
        &server.pki.dir,
        &[],
        &[twoplace::domain::RegionPrefix::parse("31").unwrap()],
        &["localhost".into(), "127.0.0.1".into()],
    )
    .unwrap();
    let mut shanghai = AdminClient::new(
        server
            .channel_as(server.pki.admin_cert("31"), server.pki.admin_key("31"))
            .await
            .unwrap(),
    );
    let overdue = shanghai
        .list_overdue(proto::ListOverdueRequest::default())
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<_> = overdue.obligations.iter().map(|o| o.key.as_str()).collect();
    assert!(keys.contains(&"CONFIRM_REGISTRATION:310112"), "{keys:?}");
    for (o, name) in overdue.obligations.iter().zip(&overdue.masked_names) {
        assert_eq!(o.resident_id, format!("{}********{}", &a[..6], &a[14..]));
        assert_eq!(name, "张*");
        assert!(o.days_overdue >= 9);
    }
    server.finish().await;
}

async fn metrics_count_what_happened_without_personal_data(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut jinan = server.office(ORIGIN).await;
    let a = zhang();
    sent(&mut jinan, plain_registration("reg-a", &a, ORIGIN)).await;
    publish(&mut jinan, vec![plain_registration("reg-a", &a, ORIGIN)]).await;
    let stranger = server
        .office(STRANGER)
        .await
        .get_case(proto::GetCaseRequest {
            resident_id: a.clone(),
            origin_office: String::new(),
            purpose: "curious".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);

    let (status, text) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(series)
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };
    assert_eq!(
        value("twoplace_rpc_requests_total{method=\"/twoplace.v1.Exchange/Publish\",code=\"OK\"}"),
        2.0
    );
    assert_eq!(
        value(
            "twoplace_rpc_errors_total{method=\"/twoplace.v1.Exchange/GetCase\",code=\"NOT_FOUND\"}"
        ),
        1.0
    );
    assert_eq!(
        value("twoplace_published_messages_total{kind=\"REGISTRATION\",outcome=\"ACCEPTED\"}"),
        1.0
    );
    assert_eq!(
        value("twoplace_published_messages_total{kind=\"REGISTRATION\",outcome=\"DUPLICATE\"}"),
        1.0
    );
    assert_eq!(
        value("twoplace_rpc_duration_seconds_count{method=\"/twoplace.v1.Exchange/Publish\"}"),
        2.0
    );
    // The registration's confirmation and its receipt are owed.
    assert_eq!(value("twoplace_obligations_open"), 2.0);
    assert_eq!(value("twoplace_db_up"), 1.0);
    assert_eq!(value("twoplace_ready"), 1.0);
    assert!(value("twoplace_db_pool_connections") >= 1.0);
    // Every sample parses; no ID, no name.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let number = line.rsplit(' ').next().unwrap();
        assert!(number.parse::<f64>().is_ok(), "{line}");
    }
    assert!(!text.contains(&a[..14]) && !text.contains("张"), "{text}");

    assert_eq!(server.http_get("/readyz").await.0, 200);
    assert_eq!(server.http_get("/healthz").await.0, 200);
    server.finish().await;
}

async fn a_trend_shows_each_day(backend: Backend) {
    use time::macros::datetime;
    let server = TestServer::start_opts(&backend, unfolded()).await;
    let mut jinan = server.office(ORIGIN).await;
    let mut minhang = server.office(DESTINATION).await;
    let a = zhang();
    // 2024-03-01 noon: a registration and an urgent question (due after
    // 03-16, i.e. at 03-17 00:00); the receipts are acknowledged at once.
    sent(&mut jinan, plain_registration("reg-a", &a, ORIGIN)).await;
    let ask = envelope(
        "ask",
        DESTINATION,
        &a,
        Body::VerificationRequest(proto::VerificationRequest {
            urgency: proto::Urgency::Urgent as i32,
            question: "?".into(),
            certificate_mismatch: false,
        }),
    );
    sent(&mut jinan, ask).await;
    let last = inbox_all(&mut minhang).await.pop().unwrap().cursor;
    minhang
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: last,
            messages: vec![],
        })
        .await
        .unwrap();
    // 03-21 noon: answered, late.
    server.clock.advance(time::Duration::days(20));
    let answer = envelope(
        "ans",
        ORIGIN,
        &a,
        Body::VerificationReply(proto::VerificationReply {
            request_message_id: "ask".into(),
            answer: "属实".into(),
        }),
    );
    sent(&mut minhang, answer).await;
    // 04-10 noon: the confirmation (due 04-01 00:00) is overdue.
    server.clock.advance(time::Duration::days(20));

    let trend = daily_trend_of(&server, ORIGIN).await;
    assert_eq!(trend.points.len(), 30);
    let day = |start: time::OffsetDateTime| {
        let p = trend
            .points
            .iter()
            .find(|p| p.start.unwrap().seconds == start.unix_timestamp())
            .unwrap_or_else(|| panic!("no bucket at {start}"));
        p.as_creditor.unwrap()
    };
    let before = day(datetime!(2024-03-16 00:00 +8));
    assert_eq!(
        (before.open, before.overdue),
        (2, 0),
        "both open, neither due yet"
    );
    let due = day(datetime!(2024-03-17 00:00 +8));
    assert_eq!((due.open, due.overdue), (2, 1));
    assert_eq!(
        due.on_time_rate,
        Some(0.0),
        "fell due that day, not answered"
    );
    let answered = day(datetime!(2024-03-21 00:00 +8));
    assert_eq!((answered.open, answered.overdue), (1, 0));
    let confirmation = day(datetime!(2024-04-01 00:00 +8));
    assert_eq!((confirmation.open, confirmation.overdue), (1, 1));
    assert_eq!(
        trend.points.last().unwrap().start.unwrap().seconds,
        datetime!(2024-04-10 00:00 +8).unix_timestamp(),
        "the last bucket holds now"
    );

    let weeks = server
        .admin_service()
        .await
        .trend(proto::TrendRequest {
            region: ORIGIN.into(),
            bucket: proto::TrendBucket::Week as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(weeks.points.len(), 26);
    // 2024-04-08 was a Monday.
    assert_eq!(
        weeks.points.last().unwrap().start.unwrap().seconds,
        datetime!(2024-04-08 00:00 +8).unix_timestamp()
    );

    // Read from recorded changes so far; folded, the trend is the same.
    let store = twoplace::store::connect(server.database_url())
        .await
        .unwrap();
    assert!(store.fold_tallies().await.unwrap() > 0);
    assert_eq!(daily_trend_of(&server, ORIGIN).await, trend);
    server.finish().await;
}

async fn a_township_office_has_its_own_backlog_and_trend(backend: Backend) {
    const TOWNSHIP: &str = "341502001"; // 金安区中市街道
    let server = TestServer::start(&backend).await;
    twoplace::pki::add_offices(&server.pki.dir, &[RegionCode::parse(TOWNSHIP).unwrap()]).unwrap();
    let mut township = server.office(TOWNSHIP).await;
    sent(
        &mut township,
        plain_registration("reg-t", &zhang(), TOWNSHIP),
    )
    .await;
    // 40 days on, the destination's receipt and confirmation are overdue,
    // owed to the township.
    server.clock.advance(time::Duration::days(40));
    let backlog = server
        .admin_service()
        .await
        .backlog(proto::BacklogRequest {
            region: TOWNSHIP.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let owed = backlog.total.unwrap().as_creditor.unwrap();
    assert_eq!((owed.open, owed.overdue), (2, 2));
    // Its county counts it too.
    let county = server
        .admin_service()
        .await
        .backlog(proto::BacklogRequest {
            region: ORIGIN.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(county.total.unwrap().as_creditor.unwrap().open, 2);
    let trend = server
        .admin_service()
        .await
        .trend(proto::TrendRequest {
            region: TOWNSHIP.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let last = trend.points.last().unwrap().as_creditor.unwrap();
    assert_eq!((last.open, last.overdue), (2, 2));

    // The destination confirms: now the township owes a receipt, which it
    // never acknowledges. Its county's overdue list must show it.
    let mut minhang = server.office(DESTINATION).await;
    let mut confirm = envelope(
        "conf-t",
        TOWNSHIP,
        &zhang(),
        Body::RegistrationConfirmation(proto::RegistrationConfirmation {
            finding: proto::Finding::Found as i32,
            observed: Some(person("张三")),
            ..Default::default()
        }),
    );
    confirm.case_ref.as_mut().unwrap().origin_office = TOWNSHIP.into();
    sent(&mut minhang, confirm).await;
    // And the county's own office, a moment later, owes one too.
    let b = resident("34152219850615002");
    let mut jinan = server.office(ORIGIN).await;
    sent(&mut jinan, plain_registration("reg-b", &b, ORIGIN)).await;
    server.clock.advance(time::Duration::minutes(1));
    let confirm_b = envelope(
        "conf-b",
        ORIGIN,
        &b,
        Body::RegistrationConfirmation(proto::RegistrationConfirmation {
            finding: proto::Finding::Found as i32,
            observed: Some(person("张三")),
            ..Default::default()
        }),
    );
    sent(&mut minhang, confirm_b).await;
    server.clock.advance(time::Duration::days(20));
    // The county pages through both offices, oldest first.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = server
            .admin_service()
            .await
            .list_overdue(proto::ListOverdueRequest {
                region: ORIGIN.into(),
                page_size: 1,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        pages.extend(page.obligations.iter().map(|o| o.debtor_office.clone()));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [TOWNSHIP, ORIGIN]);
    // The township alone: its own.
    let overdue = server
        .admin_service()
        .await
        .list_overdue(proto::ListOverdueRequest {
            region: TOWNSHIP.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let debtors: Vec<&str> = overdue
        .obligations
        .iter()
        .map(|o| o.debtor_office.as_str())
        .collect();
    assert_eq!(debtors, [TOWNSHIP]);
    server.finish().await;
}

async fn the_office_directory_names_offices_in_reports(backend: Backend) {
    use tonic_types::StatusExt;
    let server = TestServer::start(&backend).await;
    let mut admin = server.admin_service().await;
    let upsert = |code: &str, name: &str| proto::UpsertOfficeRequest {
        office: Some(proto::Office {
            code: code.into(),
            name: name.into(),
            contact: "0564-3370000".into(),
            active: true,
            ..Default::default()
        }),
    };
    let saved = admin
        .upsert_office(upsert(ORIGIN, " 金安区流动人口服务站 "))
        .await
        .unwrap()
        .into_inner()
        .office
        .unwrap();
    assert_eq!(saved.name, "金安区流动人口服务站");
    assert_eq!(saved.official_name, "六安市金安区");
    admin
        .upsert_office(upsert(HUOQIU, "霍邱县服务站"))
        .await
        .unwrap();
    // Updating keeps one entry.
    admin
        .upsert_office(upsert(HUOQIU, "霍邱县流动人口服务站"))
        .await
        .unwrap();

    let outside = admin
        .upsert_office(upsert(DESTINATION, "闵行"))
        .await
        .unwrap_err();
    assert_eq!(outside.code(), Code::PermissionDenied);
    let nameless = admin.upsert_office(upsert(ORIGIN, "  ")).await.unwrap_err();
    assert_eq!(nameless.code(), Code::InvalidArgument);
    assert_eq!(
        nameless.get_details_bad_request().unwrap().field_violations[0].field,
        "office.name"
    );

    let first = admin
        .list_offices(proto::ListOfficesRequest {
            region: "3415".into(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.offices.len(), 1);
    assert_eq!(first.offices[0].code, ORIGIN);
    let second = admin
        .list_offices(proto::ListOfficesRequest {
            region: "3415".into(),
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.offices[0].name, "霍邱县流动人口服务站");
    assert!(second.next_page_token.is_empty());

    // Reports use the directory's name; offices not in it keep theirs.
    let mut jinan = server.office(ORIGIN).await;
    sent(&mut jinan, plain_registration("reg-a", &zhang(), ORIGIN)).await;
    let backlog = admin
        .backlog(proto::BacklogRequest {
            region: "3415".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(row(&backlog, ORIGIN).name, "金安区流动人口服务站");
    assert_eq!(backlog.total.unwrap().name, "六安市");

    let office = AdminClient::new(server.office_channel(ORIGIN).await)
        .list_offices(proto::ListOfficesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(office.code(), Code::PermissionDenied);
    server.finish().await;
}

/// A database whose tallies were never counted (from before they existed)
/// has them counted when a server starts on it — and on PostgreSQL tidied
/// afterwards, outside the counting's transaction — and the backlog reads
/// as it did.
async fn a_database_from_before_the_tallies_counts_them_at_start(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut jinan = server.office(ORIGIN).await;
    for i in 0..5 {
        // A woman, as `person` has it: an even 17th digit.
        let id = resident(&format!("34150219850615{i:02}2"));
        sent(
            &mut jinan,
            registration(&format!("reg-{i}"), DESTINATION, &id),
        )
        .await;
    }
    let before = backlog_of(&server, "34").await;
    let owed = |b: &proto::BacklogResponse| {
        b.total
            .as_ref()
            .and_then(|t| t.as_creditor.as_ref())
            .map(|k| k.open)
    };
    assert!(owed(&before) > Some(0), "{before:?}");

    // As the migration that added the tallies left an older database.
    let forget = [
        "DELETE FROM tallies_built",
        "DELETE FROM tally_changes",
        "DELETE FROM tallies_now",
        "DELETE FROM tallies_daily",
    ];
    match &backend {
        Backend::Postgres { .. } => {
            let pool = sqlx::PgPool::connect(server.database_url()).await.unwrap();
            for sql in forget {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        }
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(server.database_url())
                .await
                .unwrap();
            for sql in forget {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
        }
    }

    let replica = server.replica().await;
    assert_eq!(backlog_of(&replica, "34").await, before);
    replica.finish().await;
    server.finish().await;
}
