//! The exchange core, black-box: a real server over real mTLS on both
//! backends.

mod common;

use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::StatusExt;

use common::*;
use twoplace::proto::{self, envelope::Body, inbox_event::Event};

backend_tests!(
    publishes_every_kind_and_delivers_it,
    a_message_voided_in_its_own_batch_stands_voided,
    duplicates_answer_as_the_first_time_and_conflicts_are_rejected,
    a_bad_message_never_stops_the_good_ones,
    malformed_batches_are_invalid_arguments,
    the_sender_is_the_certificate,
    inbox_pages_follow_the_cursor,
    a_batch_is_delivered_in_the_order_it_was_sent,
    subscribe_replays_then_pushes_and_resumes_from_a_cursor,
    a_commit_wakes_the_live_subscribers_of_each_recipient,
    acknowledgements_record_receipt_once,
    cases_are_visible_to_their_parties_only,
    list_cases_pages_by_role,
    connections_without_a_client_certificate_are_refused,
    shutdown_ends_live_feeds_cleanly,
    shutdown_tells_health_watchers_not_serving,
    shutdown_waits_for_an_open_call_only_as_long_as_its_grace,
    concurrent_publishers_are_delivered_once_in_commit_order,
    deliveries_are_numbered_only_in_the_feeds_turn,
    concurrent_single_publishes_are_each_answered_as_alone,
    two_servers_publishing_the_same_new_cases_agree,
    health_and_reflection_are_served,
    a_server_preparing_its_database_listens_but_is_not_ready,
    a_server_that_cannot_prepare_its_database_stops_with_the_error,
);

/// Copies of one message sent at once: one is accepted, and every copy
/// answers that acceptance.
fn accepted_once(copies: &[proto::PublishOutcome], what: &str) {
    let accepted = copies
        .iter()
        .filter(|a| status_of(a) == proto::PublishStatus::Accepted)
        .count();
    assert_eq!(accepted, 1, "{what} accepted once: {copies:?}");
    assert!(
        copies
            .iter()
            .all(|a| a.accepted_at == copies[0].accepted_at),
        "{what}: every copy answers the acceptance: {copies:?}"
    );
}

fn accepted(outcomes: &[proto::PublishOutcome]) {
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(
            status_of(o),
            proto::PublishStatus::Accepted,
            "message {i} ({}): {:?}",
            o.message_id,
            o.violations
        );
    }
}

async fn publishes_every_kind_and_delivers_it(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();

    let from_origin = vec![
        registration("reg-1", DESTINATION, &id),
        envelope(
            "cert-1",
            DESTINATION,
            &id,
            Body::CertificateIssued(proto::CertificateIssued {
                certificate_number: "LA2023-0001".into(),
                issued_on: date(2023, 2, 20),
                valid_until: date(2026, 2, 20),
            }),
        ),
        envelope(
            "ask-1",
            DESTINATION,
            &id,
            Body::VerificationRequest(proto::VerificationRequest {
                urgency: proto::Urgency::Urgent as i32,
                question: "请核实现居住地址".into(),
                certificate_mismatch: false,
            }),
        ),
        reminder("remind-1", DESTINATION, &id),
    ];
    accepted(&publish(&mut origin, from_origin).await);

    let from_destination = vec![
        envelope(
            "conf-1",
            ORIGIN,
            &id,
            Body::RegistrationConfirmation(proto::RegistrationConfirmation {
                finding: proto::Finding::Found as i32,
                observed: Some(proto::Person {
                    children: Some(2),
                    ..person("张三")
                }),
                address: "上海市闵行区莘庄镇".into(),
                phone: String::new(),
                confirmed_on: date(2023, 3, 20),
                note: String::new(),
            }),
        ),
        envelope(
            "verify-1",
            ORIGIN,
            &id,
            Body::CertificateVerification(proto::CertificateVerification {
                certificate_number: "LA2023-0001".into(),
                result: proto::VerificationResult::Valid as i32,
                mismatched_fields: vec![],
                checked_on: date(2023, 3, 21),
                note: String::new(),
            }),
        ),
        envelope(
            "fb-2023Q1",
            ORIGIN,
            &id,
            Body::PregnancyCheckFeedback(proto::PregnancyCheckFeedback {
                period: "2023Q1".into(),
                result: Some(proto::pregnancy_check_feedback::Result::Checked(
                    proto::pregnancy_check_feedback::Checked {
                        checked_on: date(2023, 3, 25),
                        outcome: proto::CheckOutcome::Normal as i32,
                    },
                )),
            }),
        ),
        envelope(
            "reply-1",
            ORIGIN,
            &id,
            Body::VerificationReply(proto::VerificationReply {
                request_message_id: "ask-1".into(),
                answer: "地址属实".into(),
            }),
        ),
    ];
    accepted(&publish(&mut destination, from_destination).await);

    // The origin corrects its registration, voids its reminder, transfers
    // the person and finally closes the case.
    let mut corrected = registration("reg-1b", DESTINATION, &id);
    if let Some(Body::Registration(r)) = corrected.body.take() {
        corrected.message_id = "corr-1".into();
        corrected.body = Some(Body::Correction(proto::Correction {
            target_message_id: "reg-1".into(),
            reason: "号码录入错误".into(),
            corrected: Some(proto::correction::Corrected::Registration(
                proto::Registration {
                    destination_phone: "13900000000".into(),
                    ..r
                },
            )),
        }));
    }
    let later = vec![
        corrected,
        envelope(
            "void-1",
            DESTINATION,
            &id,
            Body::Void(proto::Void {
                target_message_id: "remind-1".into(),
                reason: "误发".into(),
            }),
        ),
        envelope(
            "move-1",
            NEXT_DESTINATION,
            &id,
            Body::Transfer(proto::Transfer {
                new_destination_office: NEXT_DESTINATION.into(),
                moved_on: date(2023, 9, 1),
                new_address: "深圳市宝安区".into(),
            }),
        ),
        envelope(
            "close-1",
            NEXT_DESTINATION,
            &id,
            Body::Closure(proto::Closure {
                reason: proto::ClosureReason::ReturnedHome as i32,
                closed_on: date(2024, 1, 10),
                note: String::new(),
            }),
        ),
    ];
    accepted(&publish(&mut origin, later).await);

    let ids = |ds: Vec<proto::Delivery>| -> Vec<String> {
        ds.into_iter()
            .map(|d| d.envelope.unwrap().message_id)
            .collect()
    };
    assert_eq!(
        ids(inbox_all(&mut destination).await),
        [
            "reg-1", "cert-1", "ask-1", "remind-1", "corr-1", "void-1", "move-1"
        ]
    );
    assert_eq!(
        ids(inbox_all(&mut origin).await),
        ["conf-1", "verify-1", "fb-2023Q1", "reply-1"]
    );
    let mut next = server.office(NEXT_DESTINATION).await;
    assert_eq!(ids(inbox_all(&mut next).await), ["move-1", "close-1"]);

    // Every delivery names the sender the certificate proved.
    for d in inbox_all(&mut destination).await {
        assert_eq!(d.sender_office, ORIGIN);
        assert_eq!(d.envelope.unwrap().sender_office, ORIGIN);
    }

    let case = get_case(&mut origin, &id).await;
    assert_eq!(case.status, proto::CaseStatus::Closed as i32);
    assert_eq!(case.destination_office, NEXT_DESTINATION);
    assert_eq!(
        case.destination_phone, "13900000000",
        "the correction applied"
    );
    assert_eq!(case.origin_report.unwrap().children, Some(1));
    assert_eq!(case.destination_report.unwrap().children, Some(2));
    assert_eq!(
        case.certificates[0].last_verification,
        proto::VerificationResult::Valid as i32
    );
    assert_eq!(case.feedback[0].period, "2023Q1");
    assert_eq!(case.destinations.len(), 2);
    let standing = |id: &str| {
        case.history
            .iter()
            .find(|h| h.message_id == id)
            .unwrap()
            .standing
            .clone()
    };
    assert_eq!(standing("reg-1"), "SUPERSEDED");
    assert_eq!(standing("remind-1"), "VOIDED");
    assert_eq!(standing("conf-1"), "ACTIVE");
    assert_eq!(case.history.len(), 12);
    server.finish().await;
}

/// A void sent in the same batch as its target changes the standing of a
/// message written in the same transaction (after it, not beside it).
async fn a_message_voided_in_its_own_batch_stands_voided(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    let batch = vec![
        registration("reg-1", DESTINATION, &id),
        reminder("remind-1", DESTINATION, &id),
        envelope(
            "void-1",
            DESTINATION,
            &id,
            Body::Void(proto::Void {
                target_message_id: "remind-1".into(),
                reason: "误发".into(),
            }),
        ),
    ];
    accepted(&publish(&mut origin, batch).await);
    let case = get_case(&mut origin, &id).await;
    let standings: Vec<(&str, &str)> = case
        .history
        .iter()
        .map(|h| (h.message_id.as_str(), h.standing.as_str()))
        .collect();
    assert_eq!(
        standings,
        [
            ("reg-1", "ACTIVE"),
            ("remind-1", "VOIDED"),
            ("void-1", "ACTIVE")
        ]
    );
    server.finish().await;
}

async fn duplicates_answer_as_the_first_time_and_conflicts_are_rejected(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    // Finer than the database keeps: the duplicate must still answer the
    // very same time.
    server
        .clock
        .set(NOW + time::Duration::nanoseconds(123_456_789));
    let first = publish(&mut origin, vec![registration("reg-1", DESTINATION, &id)]).await;
    accepted(&first);

    server.clock.advance(time::Duration::hours(1));
    let mut retry = registration("reg-1", DESTINATION, &id);
    retry.sent_at = Some(prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    });
    // The same message twice in one batch, too.
    let again = publish(&mut origin, vec![retry.clone(), retry]).await;
    for o in &again {
        assert_eq!(status_of(o), proto::PublishStatus::Duplicate);
        assert_eq!(
            o.accepted_at, first[0].accepted_at,
            "the first outcome again"
        );
    }

    let mut changed = registration("reg-1", DESTINATION, &id);
    if let Some(Body::Registration(r)) = &mut changed.body {
        r.destination_address = "上海市闵行区七宝镇".into();
    }
    let conflict = publish(&mut origin, vec![changed]).await;
    assert_eq!(status_of(&conflict[0]), proto::PublishStatus::Rejected);
    assert_eq!(conflict[0].violations[0].field, "messages[0].message_id");
    assert_eq!(conflict[0].violations[0].reason, "CONFLICT");

    // A new id used twice in one batch with different content: the first
    // is accepted, the second is a conflict.
    let first_cert = envelope(
        "cert-x",
        DESTINATION,
        &id,
        Body::CertificateIssued(proto::CertificateIssued {
            certificate_number: "LA-1".into(),
            issued_on: date(2024, 2, 1),
            valid_until: None,
        }),
    );
    let mut other_cert = first_cert.clone();
    if let Some(Body::CertificateIssued(c)) = &mut other_cert.body {
        c.certificate_number = "LA-2".into();
    }
    let both = publish(&mut origin, vec![first_cert, other_cert]).await;
    assert_eq!(status_of(&both[0]), proto::PublishStatus::Accepted);
    assert_eq!(status_of(&both[1]), proto::PublishStatus::Rejected);
    assert_eq!(both[1].violations[0].reason, "CONFLICT");

    // An id already used for another person's case: the publish looks
    // first among the batch's own cases, so this is found on a second look,
    // and the good message beside it still goes in.
    let other = resident("34150219850615024");
    let reused = publish(
        &mut origin,
        vec![
            registration("reg-1", DESTINATION, &other),
            registration("reg-2", DESTINATION, &other),
        ],
    )
    .await;
    assert_eq!(status_of(&reused[0]), proto::PublishStatus::Rejected);
    assert_eq!(reused[0].violations[0].field, "messages[0].message_id");
    assert_eq!(reused[0].violations[0].reason, "CONFLICT");
    assert_eq!(status_of(&reused[1]), proto::PublishStatus::Accepted);

    let mut destination = server.office(DESTINATION).await;
    assert_eq!(
        inbox_all(&mut destination).await.len(),
        3,
        "each stored once"
    );
    server.finish().await;
}

async fn a_bad_message_never_stops_the_good_ones(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let good = zhang();
    let bad_check_digit = {
        let mut s = zhang();
        let last = if s.ends_with('0') { "1" } else { "0" };
        s.replace_range(17.., last);
        s
    };
    let mut wrong_birth = registration("m-3", DESTINATION, &resident("34150219900101002"));
    if let Some(Body::Registration(r)) = &mut wrong_birth.body {
        r.person.as_mut().unwrap().name = String::new();
    }
    let outcomes = publish(
        &mut origin,
        vec![
            registration("m-1", DESTINATION, &good),
            registration("m-2", DESTINATION, &bad_check_digit),
            wrong_birth,
            registration("m 4", "999999", &good),
            reminder("m-5", DESTINATION, &good),
        ],
    )
    .await;
    let statuses: Vec<_> = outcomes.iter().map(status_of).collect();
    use proto::PublishStatus::{Accepted, Rejected};
    assert_eq!(statuses, [Accepted, Rejected, Rejected, Rejected, Accepted]);

    let fields = |i: usize| -> Vec<(String, String)> {
        outcomes[i]
            .violations
            .iter()
            .map(|v| (v.field.clone(), v.reason.clone()))
            .collect()
    };
    assert_eq!(
        fields(1),
        [(
            "messages[1].case_ref.resident_id".to_string(),
            "BAD_CHECK_DIGIT".to_string()
        )]
    );
    let third = fields(2);
    assert!(third.contains(&(
        "messages[2].registration.person.name".into(),
        "INVALID_NAME".into()
    )));
    let fourth = fields(3);
    assert!(fourth.contains(&("messages[3].message_id".into(), "INVALID_MESSAGE_ID".into())));
    // Every problem of a message is reported at once, and the person's
    // birth date disagrees with the ID in message 2 too.
    let mut birth = registration("m-6", DESTINATION, &good);
    if let Some(Body::Registration(r)) = &mut birth.body {
        let p = r.person.as_mut().unwrap();
        p.birth_date = date(1985, 6, 16);
        p.sex = proto::Sex::Male as i32;
    }
    let o = publish(&mut origin, vec![birth]).await;
    let reasons: Vec<_> = o[0].violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "messages[0].registration.person.birth_date",
            "messages[0].registration.person.sex"
        ]
    );

    let mut destination = server.office(DESTINATION).await;
    assert_eq!(
        inbox_all(&mut destination).await.len(),
        2,
        "the good ones are in"
    );
    server.finish().await;
}

async fn malformed_batches_are_invalid_arguments(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let empty = origin
        .publish(proto::PublishRequest { messages: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let details = empty.get_details_bad_request().expect("BadRequest details");
    assert_eq!(details.field_violations[0].field, "messages");
    assert_eq!(details.field_violations[0].reason, "BATCH_SIZE");

    let too_many: Vec<_> = (0..1001)
        .map(|i| reminder(&format!("r-{i}"), DESTINATION, &zhang()))
        .collect();
    let err = origin
        .publish(proto::PublishRequest { messages: too_many })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let huge = {
        let mut m = registration("big", DESTINATION, &zhang());
        if let Some(Body::Registration(r)) = &mut m.body {
            r.note = "x".repeat(70 * 1024);
        }
        m
    };
    let o = publish(&mut origin, vec![huge]).await;
    assert_eq!(o[0].violations[0].reason, "TOO_LARGE");
    assert_eq!(o[0].violations[0].field, "messages[0]");

    let err = origin
        .inbox(proto::InboxRequest {
            after_cursor: "not-a-cursor".into(),
            page_size: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "after_cursor"
    );
    server.finish().await;
}

async fn the_sender_is_the_certificate(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut forged = envelope(
        "forged",
        ORIGIN,
        &zhang(),
        Body::Reminder(proto::Reminder::default()),
    );
    forged.sender_office = DESTINATION.into();
    let o = publish(&mut origin, vec![forged]).await;
    assert_eq!(status_of(&o[0]), proto::PublishStatus::Rejected);
    assert!(
        o[0].violations
            .iter()
            .any(|v| v.field == "messages[0].sender_office" && v.reason == "SENDER_MISMATCH")
    );

    // A stranger's message about the case is kept (it may be an answer
    // that arrived before the transfer naming it) but gains it nothing: no
    // read access, no change to the case's facts.
    accepted(
        &publish(
            &mut origin,
            vec![registration("reg-1", DESTINATION, &zhang())],
        )
        .await,
    );
    let mut stranger = server.office(STRANGER).await;
    let claim = envelope(
        "s-1",
        ORIGIN,
        &zhang(),
        Body::RegistrationConfirmation(proto::RegistrationConfirmation {
            finding: proto::Finding::NotFound as i32,
            ..Default::default()
        }),
    );
    accepted(&publish(&mut stranger, vec![claim]).await);
    let read = |purpose: &str| proto::GetCaseRequest {
        resident_id: zhang(),
        origin_office: String::new(),
        purpose: purpose.into(),
    };
    assert_eq!(
        stranger.get_case(read("curious")).await.unwrap_err().code(),
        Code::NotFound
    );
    let case = origin.get_case(read("check")).await.unwrap().into_inner();
    assert_eq!(case.destination_finding, proto::Finding::Unspecified as i32);

    // Administrators do not take part in cases.
    let mut admin = server.admin().await;
    let err = admin
        .publish(proto::PublishRequest {
            messages: vec![reminder("a-1", DESTINATION, &zhang())],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.finish().await;
}

async fn inbox_pages_follow_the_cursor(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let id = resident(&format!("341502198506150{i}2"));
        expected.push(format!("reg-{i}"));
        accepted(
            &publish(
                &mut origin,
                vec![registration(&format!("reg-{i}"), DESTINATION, &id)],
            )
            .await,
        );
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = Vec::new();
    loop {
        let page = destination
            .inbox(proto::InboxRequest {
                after_cursor: cursor.clone(),
                page_size: 3,
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(page.deliveries.len());
        if page.deliveries.is_empty() {
            assert_eq!(page.next_cursor, cursor, "an empty page keeps the cursor");
            break;
        }
        assert_eq!(page.next_cursor, page.deliveries.last().unwrap().cursor);
        seen.extend(
            page.deliveries
                .into_iter()
                .map(|d| d.envelope.unwrap().message_id),
        );
        cursor = page.next_cursor;
    }
    assert_eq!(pages, [3, 3, 1, 0]);
    assert_eq!(seen, expected);
    // The origin's inbox is its own: empty.
    assert!(inbox_all(&mut origin).await.is_empty());
    server.finish().await;
}

async fn a_batch_is_delivered_in_the_order_it_was_sent(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    // Ids and people in no sorted order (nor the same one): the inbox must
    // follow the batch, not a key.
    let sent: Vec<String> = (0..60).map(|i| format!("reg-{}", (i * 37) % 60)).collect();
    let batch = sent
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let person = resident(&format!("34150219850615{:02}0", (i * 13) % 60));
            registration(id, DESTINATION, &person)
        })
        .collect();
    accepted(&publish(&mut origin, batch).await);
    let delivered: Vec<String> = inbox_all(&mut destination)
        .await
        .into_iter()
        .map(|d| d.envelope.unwrap().message_id)
        .collect();
    assert_eq!(delivered, sent);
    server.finish().await;
}

async fn subscribe_replays_then_pushes_and_resumes_from_a_cursor(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    accepted(&publish(&mut origin, vec![registration("m-1", DESTINATION, &id)]).await);

    let mut stream = destination
        .subscribe(proto::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let next_delivery = async |stream: &mut tonic::Streaming<proto::InboxEvent>| loop {
        if let Event::Delivery(d) = next_event(stream).await {
            return d;
        }
    };
    let replayed = next_delivery(&mut stream).await;
    assert_eq!(replayed.envelope.as_ref().unwrap().message_id, "m-1");

    // Live: published after subscribing, pushed without polling.
    let sent = std::time::Instant::now();
    accepted(&publish(&mut origin, vec![reminder("m-2", DESTINATION, &id)]).await);
    let live = next_delivery(&mut stream).await;
    assert_eq!(live.envelope.as_ref().unwrap().message_id, "m-2");
    assert!(sent.elapsed() < Duration::from_secs(1), "pushed on commit");

    // A heartbeat carries the cursor of what was sent.
    let beat = loop {
        if let Event::Heartbeat(h) = next_event(&mut stream).await {
            break h;
        }
    };
    assert_eq!(beat.cursor, live.cursor);
    drop(stream);

    // Messages published while disconnected arrive on reconnect, once.
    accepted(
        &publish(
            &mut origin,
            vec![
                reminder("m-3", DESTINATION, &id),
                reminder("m-4", DESTINATION, &id),
            ],
        )
        .await,
    );
    let mut stream = destination
        .subscribe(proto::SubscribeRequest {
            after_cursor: live.cursor.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let a = next_delivery(&mut stream).await;
    let b = next_delivery(&mut stream).await;
    assert_eq!(a.envelope.unwrap().message_id, "m-3");
    assert_eq!(b.envelope.unwrap().message_id, "m-4");
    accepted(&publish(&mut origin, vec![reminder("m-5", DESTINATION, &id)]).await);
    let c = next_delivery(&mut stream).await;
    assert_eq!(
        c.envelope.unwrap().message_id,
        "m-5",
        "nothing twice, nothing missed"
    );
    server.finish().await;
}

/// A commit wakes the live subscribers of every office it delivered to (a
/// transfer goes to both destinations), not only its first recipient's,
/// and they need not wait for their poll.
async fn a_commit_wakes_the_live_subscribers_of_each_recipient(backend: Backend) {
    // Heartbeats (each also reads the inbox) far apart: only a wake, or
    // the poll for other servers' commits a second later, brings it.
    let server = TestServer::start_with(&backend, Duration::from_secs(60)).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    accepted(&publish(&mut origin, vec![registration("reg", DESTINATION, &id)]).await);

    let mut subscribers = Vec::new();
    for office in [DESTINATION, NEXT_DESTINATION, STRANGER] {
        let mut client = server.office(office).await;
        let mut stream = client
            .subscribe(proto::SubscribeRequest::default())
            .await
            .unwrap()
            .into_inner();
        // The first heartbeat follows the replay: the feed is live.
        while !matches!(next_event(&mut stream).await, Event::Heartbeat(_)) {}
        subscribers.push((client, stream));
    }

    let moved = transfer("move", NEXT_DESTINATION, &id, date(2024, 2, 20));
    let sent = std::time::Instant::now();
    accepted(&publish(&mut origin, vec![moved]).await);
    for (_, stream) in &mut subscribers[..2] {
        let event = next_event(stream).await;
        let Event::Delivery(d) = event else {
            panic!("a delivery, not {event:?}");
        };
        assert_eq!(d.envelope.unwrap().message_id, "move");
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "woken by the commit, not found by the poll: {:?}",
            sent.elapsed()
        );
    }
    // Not a recipient: nothing for it.
    let (_, stranger) = &mut subscribers[2];
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), stranger.next())
            .await
            .is_err(),
        "a stranger was sent something"
    );
    server.finish().await;
}

async fn acknowledgements_record_receipt_once(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    accepted(
        &publish(
            &mut origin,
            vec![
                registration("m-1", DESTINATION, &id),
                reminder("m-2", DESTINATION, &id),
                reminder("m-3", DESTINATION, &id),
            ],
        )
        .await,
    );
    let inbox = inbox_all(&mut destination).await;
    assert!(inbox.iter().all(|d| d.received_at.is_none()));

    server.clock.advance(time::Duration::minutes(5));
    let ack = destination
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: inbox[1].cursor.clone(),
            messages: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.acknowledged, 2);
    let first_receipt = ack.received_at;

    server.clock.advance(time::Duration::minutes(5));
    let ack = destination
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: inbox[1].cursor.clone(),
            messages: vec![proto::MessageRef {
                sender_office: ORIGIN.into(),
                message_id: "m-3".into(),
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.acknowledged, 1, "only m-3 is new");

    let inbox = inbox_all(&mut destination).await;
    assert_eq!(
        inbox[0].received_at, first_receipt,
        "the first receipt time stays"
    );
    assert!(inbox[2].received_at.is_some());

    // The origin cannot acknowledge what was not delivered to it.
    let ack = origin
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: inbox[2].cursor.clone(),
            messages: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.acknowledged, 0);

    let err = destination
        .acknowledge(proto::AcknowledgeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.finish().await;
}

async fn cases_are_visible_to_their_parties_only(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    accepted(&publish(&mut origin, vec![registration("reg-1", DESTINATION, &id)]).await);
    let get = |purpose: &str| proto::GetCaseRequest {
        resident_id: id.clone(),
        origin_office: String::new(),
        purpose: purpose.into(),
    };

    let mut destination = server.office(DESTINATION).await;
    let case = destination
        .get_case(get("核实"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case.resident_id, id);
    assert_eq!(case.origin_report.unwrap().name, "张三");
    assert_eq!(case.destination_phone, "13800000000");

    let mut stranger = server.office(STRANGER).await;
    let err = stranger.get_case(get("curious")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "existence does not leak");
    assert!(!err.message().contains(&id), "no full ID in the error");

    let mut admin = server.admin().await;
    assert_eq!(
        admin.get_case(get("audit")).await.unwrap_err().code(),
        Code::PermissionDenied
    );

    let err = origin
        .get_case(proto::GetCaseRequest {
            resident_id: "12345".into(),
            ..get("")
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.get_details_bad_request().unwrap().field_violations[0].field,
        "resident_id"
    );

    // After a transfer the old destination sees its own part, masked.
    accepted(
        &publish(
            &mut origin,
            vec![transfer("move-1", NEXT_DESTINATION, &id, date(2023, 9, 1))],
        )
        .await,
    );
    let past = destination
        .get_case(get("history"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        past.resident_id,
        format!("{}********{}", &id[..6], &id[14..])
    );
    assert_eq!(past.origin_report.unwrap().name, "张*");
    assert!(past.destination_phone.is_empty() && past.destination_address.is_empty());
    let mut next = server.office(NEXT_DESTINATION).await;
    let current = next.get_case(get("arrival")).await.unwrap().into_inner();
    assert_eq!(current.resident_id, id);
    assert_eq!(current.status, proto::CaseStatus::Transferred as i32);
    server.finish().await;
}

async fn list_cases_pages_by_role(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    for i in 0..5 {
        let id = resident(&format!("341502198506150{i}2"));
        let to = if i < 3 { DESTINATION } else { NEXT_DESTINATION };
        accepted(
            &publish(
                &mut origin,
                vec![registration(&format!("reg-{i}"), to, &id)],
            )
            .await,
        );
    }
    let list = |role: proto::CaseRole, counterpart: &str, token: String| proto::ListCasesRequest {
        role: role as i32,
        status: 0,
        counterpart_office: counterpart.into(),
        page_size: 2,
        page_token: token,
    };
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = origin
            .list_cases(list(proto::CaseRole::Origin, "", token))
            .await
            .unwrap()
            .into_inner();
        all.extend(page.cases);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|c| c.name == "张三"));

    let page = origin
        .list_cases(list(
            proto::CaseRole::Origin,
            NEXT_DESTINATION,
            String::new(),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.cases.len(), 2);

    let mut destination = server.office(DESTINATION).await;
    let page = destination
        .list_cases(proto::ListCasesRequest {
            page_size: 10,
            ..list(proto::CaseRole::Destination, "", String::new())
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.cases.len(), 3, "the destination's roll");
    assert!(page.next_page_token.is_empty());
    let page = destination
        .list_cases(list(proto::CaseRole::Origin, "", String::new()))
        .await
        .unwrap()
        .into_inner();
    assert!(page.cases.is_empty(), "no outflow of its own");

    let err = destination
        .list_cases(list(proto::CaseRole::Unspecified, "", String::new()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    server.finish().await;
}

async fn connections_without_a_client_certificate_are_refused(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let refused = match server.anonymous().await {
        Err(_) => true,
        Ok(channel) => {
            let mut client = proto::exchange_client::ExchangeClient::new(channel);
            client.inbox(proto::InboxRequest::default()).await.is_err()
        }
    };
    assert!(refused, "no client certificate, no service");

    // A certificate from another CA is refused too.
    let other = tempfile::tempdir().unwrap();
    let foreign = twoplace::pki::init(
        other.path(),
        &[twoplace::domain::RegionCode::parse(ORIGIN).unwrap()],
        &[],
        &["localhost".into()],
    )
    .unwrap();
    let refused = match server
        .channel_as(foreign.office_cert(ORIGIN), foreign.office_key(ORIGIN))
        .await
    {
        Err(_) => true,
        Ok(channel) => proto::exchange_client::ExchangeClient::new(channel)
            .inbox(proto::InboxRequest::default())
            .await
            .is_err(),
    };
    assert!(refused, "a certificate of another CA is refused");
    server.finish().await;
}

async fn shutdown_ends_live_feeds_cleanly(backend: Backend) {
    let mut server = TestServer::start_with(&backend, Duration::from_secs(60)).await;
    let mut destination = server.office(DESTINATION).await;
    let mut stream = destination
        .subscribe(proto::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    server.shutdown().await;
    // Whatever was in flight (the first heartbeat) arrives, then the stream
    // ends with OK rather than an error.
    let events = tokio::time::timeout(Duration::from_secs(5), async {
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            events.push(event.expect("no error on shutdown"));
        }
        events
    })
    .await
    .expect("the stream ends promptly");
    assert!(events.len() <= 1, "{events:?}");
    server.finish().await;
}

/// A load balancer watching health must learn the server is going before
/// it is gone, for the server as a whole ("") as for the Exchange.
async fn shutdown_tells_health_watchers_not_serving(backend: Backend) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut server = TestServer::start(&backend).await;
    let channel = server.office_channel(ORIGIN).await;
    let mut watches = Vec::new();
    for service in ["", "twoplace.v1.Exchange"] {
        let mut watch = HealthClient::new(channel.clone())
            .watch(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        let first = watch.next().await.unwrap().unwrap().status;
        assert_eq!(first, ServingStatus::Serving as i32, "{service:?}");
        watches.push((service, watch));
    }
    server.begin_shutdown();
    for (service, watch) in &mut watches {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("told promptly")
            .expect("told before the stream ends")
            .unwrap()
            .status;
        assert_eq!(next, ServingStatus::NotServing as i32, "{service:?}");
    }
    // The watches are live streams: they must not hold the shutdown open.
    server.finish().await;
}

/// A client that keeps a call open (here a reflection stream, as a
/// grpcurl session would) must not keep the server from stopping.
async fn shutdown_waits_for_an_open_call_only_as_long_as_its_grace(backend: Backend) {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest,
    };
    let mut server = TestServer::start_opts(
        &backend,
        Options {
            shutdown_grace: Duration::from_secs(1),
            ..Options::default()
        },
    )
    .await;
    let channel = server.office_channel(ORIGIN).await;
    let (requests, open) = tokio::sync::mpsc::channel(1);
    requests
        .send(ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        })
        .await
        .unwrap();
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(open))
        .await
        .unwrap()
        .into_inner();
    responses.next().await.unwrap().unwrap();
    // The request stream stays open (`requests` lives on): the call too.
    let started = std::time::Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the open call had its grace: {:?}",
        started.elapsed()
    );
    drop(requests);
    server.finish().await;
}

/// Publishes that arrive together are written in one transaction (group
/// commit); each request must still get exactly its own outcomes, and the
/// same message sent twice at once is accepted once.
async fn concurrent_single_publishes_are_each_answered_as_alone(backend: Backend) {
    const CLIENTS: usize = 12;
    let server = TestServer::start(&backend).await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let mut client = server.office(ORIGIN).await;
        tasks.push(tokio::spawn(async move {
            let id = resident(&format!("34150219850615{c:02}2"));
            let mut answers = Vec::new();
            for m in 0..5 {
                let mut batch = vec![registration(&format!("c{c}-m{m}"), DESTINATION, &id)];
                if m == 0 {
                    // Every client also sends the one shared message.
                    batch = vec![registration("shared", DESTINATION, &zhang())];
                }
                answers.push(publish(&mut client, batch).await.remove(0));
            }
            answers
        }));
    }
    let mut shared = Vec::new();
    for (c, task) in tasks.into_iter().enumerate() {
        let answers = task.await.unwrap();
        shared.push(answers[0].clone());
        for (m, a) in answers.iter().enumerate().skip(1) {
            assert_eq!(a.message_id, format!("c{c}-m{m}"), "its own outcome");
            assert_eq!(status_of(a), proto::PublishStatus::Accepted, "{a:?}");
        }
    }
    assert!(
        shared.iter().all(|a| a.message_id == "shared"),
        "{shared:?}"
    );
    accepted_once(&shared, "the shared message");
    let mut destination = server.office(DESTINATION).await;
    let delivered = inbox_all(&mut destination).await;
    assert_eq!(
        delivered.len(),
        1 + CLIENTS * 4,
        "each message delivered once"
    );
    server.finish().await;
}

/// Where publishers write side by side (PostgreSQL), a publish numbers its
/// deliveries only in the feed's turn, so numbers follow commit order. The
/// race above shows it only when a commit happens to be late; this holds the
/// turn from another session and looks: the publish waits, numbering
/// nothing, and goes on once the turn is free.
async fn deliveries_are_numbered_only_in_the_feeds_turn(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let url = server.database_url().to_string();
    if !url.starts_with("postgres") {
        // SQLite's write lock is the turn, for the whole transaction.
        server.finish().await;
        return;
    }
    let id = resident("34150219850615012");
    let mut origin = server.office(ORIGIN).await;
    accepted(&publish(&mut origin, vec![registration("reg-1", DESTINATION, &id)]).await);

    use sqlx::Connection as _;
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    const NUMBERED: &str = "SELECT last_value FROM deliveries_seq_seq";
    let before: i64 = sqlx::query_scalar(NUMBERED)
        .fetch_one(&mut other)
        .await
        .unwrap();
    // The feed's turn: a fixed advisory lock key every server shares.
    sqlx::query("SELECT pg_advisory_lock(8392298959273550694)")
        .execute(&mut other)
        .await
        .unwrap();
    let publishing = tokio::spawn(async move {
        publish(&mut origin, vec![reminder("reminder-1", DESTINATION, &id)]).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !publishing.is_finished(),
        "answered without the feed's turn"
    );
    let during: i64 = sqlx::query_scalar(NUMBERED)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(
        during, before,
        "a delivery numbered outside the feed's turn"
    );
    sqlx::query("SELECT pg_advisory_unlock(8392298959273550694)")
        .execute(&mut other)
        .await
        .unwrap();
    accepted(&publishing.await.unwrap());
    let after: i64 = sqlx::query_scalar(NUMBERED)
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(after, before + 1);
    other.close().await.unwrap();
    server.finish().await;
}

async fn concurrent_publishers_are_delivered_once_in_commit_order(backend: Backend) {
    const WRITERS: usize = 8;
    const BATCHES: usize = 6;
    const PER_BATCH: usize = 40;
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    // One case per writer, so no row lock of a shared case orders them.
    let ids: Vec<_> = (0..WRITERS)
        .map(|w| resident(&format!("34150219850615{w:02}2")))
        .collect();
    let registrations = ids
        .iter()
        .enumerate()
        .map(|(w, id)| registration(&format!("reg-{w}"), DESTINATION, id))
        .collect();
    accepted(&publish(&mut origin, registrations).await);

    // Subscribed throughout: it must see every delivery once, in the order
    // the inbox pages them afterwards, even with writers racing. Batches are
    // large so that, were sequence numbers not handed out in commit order, a
    // late commit would slip behind the subscriber's cursor.
    let mut destination = server.office(DESTINATION).await;
    let mut stream = destination
        .subscribe(proto::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut writers = Vec::new();
    for (w, id) in ids.into_iter().enumerate() {
        let mut client = server.office(ORIGIN).await;
        writers.push(tokio::spawn(async move {
            for b in 0..BATCHES {
                let batch = (0..PER_BATCH)
                    .map(|i| reminder(&format!("w{w}-b{b}-m{i}"), DESTINATION, &id))
                    .collect();
                accepted(&publish(&mut client, batch).await);
            }
        }));
    }
    let total = WRITERS + WRITERS * BATCHES * PER_BATCH;
    let mut streamed = Vec::new();
    // One deadline for the lot: heartbeats keep the stream busy even when a
    // delivery was skipped for good.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while streamed.len() < total {
        let event = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} of {total} deliveries streamed in 60 s",
                    streamed.len()
                )
            })
            .unwrap()
            .unwrap();
        if let Some(Event::Delivery(d)) = event.event {
            streamed.push(d.envelope.unwrap().message_id);
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    let paged: Vec<_> = inbox_all(&mut destination)
        .await
        .into_iter()
        .map(|d| d.envelope.unwrap().message_id)
        .collect();
    // Compared compactly: the lists are long.
    if let Some(i) = (0..streamed.len().max(paged.len())).find(|&i| streamed.get(i) != paged.get(i))
    {
        panic!(
            "the live feed and the pages diverge at {i}: {:?} streamed, {:?} paged",
            streamed.get(i),
            paged.get(i)
        );
    }
    let mut unique = paged.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), total, "each message once");
    // Each writer's batches arrive in the order it sent them.
    for w in 0..WRITERS {
        let mine: Vec<_> = paged
            .iter()
            .filter(|m| m.starts_with(&format!("w{w}-")))
            .cloned()
            .collect();
        let expected: Vec<_> = (0..BATCHES)
            .flat_map(|b| (0..PER_BATCH).map(move |i| format!("w{w}-b{b}-m{i}")))
            .collect();
        assert_eq!(mine, expected);
    }
    server.finish().await;
}

/// Two servers on one database, each with clients sending the same
/// registrations of people not seen before (in opposite orders) and their
/// own reminders about them, all at once: the servers race to create the
/// same cases and to take the same message ids. Each registration is
/// accepted once, every copy answers that acceptance, and each message is
/// delivered once (the tallies and references are checked at `finish`).
async fn two_servers_publishing_the_same_new_cases_agree(backend: Backend) {
    const PEOPLE: usize = 300;
    const CLIENTS: usize = 3;
    let server = TestServer::start(&backend).await;
    let replica = server.replica().await;
    let ids: Vec<_> = (0..PEOPLE)
        // As `person` has it: born 1985-06-15, an even 17th digit.
        .map(|i| resident(&format!("34150219850615{:02}{}", i / 5, i % 5 * 2)))
        .collect();
    let mut tasks = Vec::new();
    for (s, target) in [&server, &replica].into_iter().enumerate() {
        for c in 0..CLIENTS {
            let mut client = target.office(ORIGIN).await;
            let mut people: Vec<_> = ids.iter().cloned().enumerate().collect();
            if c % 2 == 1 {
                people.reverse();
            }
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for chunk in people.chunks(50) {
                    let batch = chunk
                        .iter()
                        .flat_map(|(i, id)| {
                            [
                                registration(&format!("reg-{i}"), DESTINATION, id),
                                reminder(&format!("s{s}-c{c}-rem-{i}"), DESTINATION, id),
                            ]
                        })
                        .collect();
                    answers.extend(publish(&mut client, batch).await);
                }
                answers
            }));
        }
    }
    let mut registrations: std::collections::HashMap<String, Vec<proto::PublishOutcome>> =
        Default::default();
    for task in tasks {
        for a in task.await.unwrap() {
            if a.message_id.starts_with("reg-") {
                registrations
                    .entry(a.message_id.clone())
                    .or_default()
                    .push(a);
            } else {
                assert_eq!(status_of(&a), proto::PublishStatus::Accepted, "{a:?}");
            }
        }
    }
    assert_eq!(registrations.len(), PEOPLE);
    for (id, answers) in &registrations {
        accepted_once(answers, id);
    }
    let delivered = inbox_all(&mut server.office(DESTINATION).await).await;
    let mut unique: Vec<_> = delivered
        .iter()
        .map(|d| d.envelope.as_ref().unwrap().message_id.clone())
        .collect();
    unique.sort();
    unique.dedup();
    assert_eq!(delivered.len(), PEOPLE * (1 + 2 * CLIENTS));
    assert_eq!(unique.len(), delivered.len(), "each message delivered once");
    replica.finish().await;
    server.finish().await;
}

async fn health_and_reflection_are_served(backend: Backend) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let server = TestServer::start(&backend).await;
    let channel = server.office_channel(ORIGIN).await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "twoplace.v1.Exchange"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("a service list");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "twoplace.v1.Exchange",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    server.finish().await;
}

async fn a_server_preparing_its_database_listens_but_is_not_ready(backend: Backend) {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    accepted(
        &publish(
            &mut origin,
            vec![registration("reg-1", DESTINATION, &zhang())],
        )
        .await,
    );

    let held = TalliesForgotten::hold(server.database_url()).await;
    let starting = server.replica_starting().await;
    let channel = starting
        .channel_as(
            starting.pki.office_cert(ORIGIN),
            starting.pki.office_key(ORIGIN),
        )
        .await
        .expect("it listens while it prepares");
    let mut health = HealthClient::new(channel.clone());
    let status = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    for service in ["", "twoplace.v1.Exchange"] {
        let answer = health.check(status(service)).await.unwrap().into_inner();
        assert_eq!(
            answer.status,
            ServingStatus::NotServing as i32,
            "{service:?}"
        );
    }
    let mut client = proto::exchange_client::ExchangeClient::new(channel);
    let refused = client
        .get_case(proto::GetCaseRequest {
            resident_id: zhang(),
            origin_office: String::new(),
            purpose: "test".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("starting"), "{refused:?}");
    assert!(
        refused
            .get_details_retry_info()
            .and_then(|r| r.retry_delay)
            .is_some(),
        "a retry delay: {refused:?}"
    );
    let mut admin = starting.admin_service().await;
    let backlog = || proto::BacklogRequest {
        region: ADMIN.into(),
        ..Default::default()
    };
    let refused = admin.backlog(backlog()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let (code, body) = starting.http_get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    let (_, metrics) = starting.http_get("/metrics").await;
    assert!(metrics.contains("\ntwoplace_ready 0\n"), "{metrics}");
    assert_eq!(starting.http_get("/healthz").await.0, 200);
    let (code, body) = starting
        .https_get(
            "/api/v1/whoami",
            None,
            Some((
                starting.pki.admin_cert(ADMIN),
                starting.pki.admin_key(ADMIN),
            )),
        )
        .await;
    assert_eq!(code, 503, "{body}");

    held.release().await;
    starting.wait_ready().await;
    for service in ["", "twoplace.v1.Exchange"] {
        let answer = health.check(status(service)).await.unwrap().into_inner();
        assert_eq!(answer.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let case = get_case(&mut client, &zhang()).await;
    assert_eq!(case.resident_id, zhang());
    admin
        .backlog(backlog())
        .await
        .expect("the backlog once ready");
    starting.finish().await;
    server.finish().await;
}

async fn a_server_that_cannot_prepare_its_database_stops_with_the_error(backend: Backend) {
    let mut server = TestServer::start(&backend).await;
    server.shutdown().await;
    // Migrated, so opened as usual; its tallies cannot be counted.
    let url = server.database_url().to_string();
    let broken = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::raw_sql("DROP TABLE tallies_built")
            .execute(&pool)
            .await
            .map(drop)
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::raw_sql("DROP TABLE tallies_built")
            .execute(&pool)
            .await
            .map(drop)
    };
    broken.unwrap();
    let starting = server.replica_starting().await;
    let error = starting.failure().await;
    assert!(
        matches!(error, twoplace::server::ServeError::Prepare(_)),
        "{error:?}"
    );
    server.discard().await;
}
