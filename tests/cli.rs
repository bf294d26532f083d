//! The offices' command-line client against a real server, on both
//! backends: imports with bad lines, an interrupted import resumed, a
//! followed inbox, and the readable views.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use common::*;

backend_tests!(
    an_import_reports_bad_lines_and_keeps_the_good_ones,
    an_interrupted_import_resumes_without_duplicates,
    follow_prints_what_arrives,
    follow_stops_at_a_refusal_and_waits_out_a_start,
    cases_and_obligations_read_back,
    the_simulators_totals_are_the_services,
    the_simulators_totals_hold_when_writers_run_side_by_side,
    replies_discharge_what_is_owed,
    a_csv_import_reports_bad_rows_by_line,
    a_paced_drill_has_late_answers,
    an_import_waits_for_a_server_that_is_starting,
);

/// One registration per line, each for another person, without periodic
/// checks (so every line is cheap).
fn resident_number(i: usize) -> String {
    // A real birth date in 1985 and a sequence number: distinct for i < 336,000.
    resident(&format!(
        "3415021985{:02}{:02}{:03}",
        1 + (i / 28_000) % 12,
        1 + (i / 1000) % 28,
        i % 1000
    ))
}

fn registration_line(i: usize, message_id: Option<&str>) -> String {
    let id = resident_number(i);
    let message_id = message_id.map_or(String::new(), |m| format!("\"messageId\": \"{m}\", "));
    format!(
        "{{{message_id}\"recipientOffice\": \"{DESTINATION}\", \"caseRef\": {{\"residentId\": \"{id}\", \"originOffice\": \"{ORIGIN}\"}}, \"registration\": {{\"person\": {{\"name\": \"张三\"}}, \"periodicChecks\": false}}}}"
    )
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut f = std::fs::File::create(path).unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

async fn an_import_reports_bad_lines_and_keeps_the_good_ones(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("march.jsonl");
    let good = resident_number(4);
    let broken = format!(
        "{}{}",
        &good[..17],
        if good.ends_with('1') { '2' } else { '1' }
    );
    let bad_id = registration_line(4, Some("bad-4")).replace(&good, &broken);
    write_lines(
        &file,
        &[
            "# 2024-03 registrations".into(),
            registration_line(1, None),
            "{\"recipientOffice\": ".into(),
            registration_line(3, Some("r-3")),
            bad_id,
            registration_line(5, None),
        ],
    );
    let run = server
        .cli(ORIGIN)
        .arg("publish")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(dir.path().join("march.jsonl.rejected.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert_eq!(lines[0]["line"], 3);
    assert_eq!(lines[0]["reason"], "INVALID_JSON");
    assert_eq!(lines[1]["line"], 5);
    assert_eq!(lines[1]["field"], "case_ref.resident_id");
    assert_eq!(lines[1]["reason"], "BAD_CHECK_DIGIT");
    let mut destination = server.office(DESTINATION).await;
    assert_eq!(
        inbox_all(&mut destination).await.len(),
        3,
        "the good lines are in"
    );
    server.finish().await;
}

async fn an_interrupted_import_resumes_without_duplicates(backend: Backend) {
    const LINES: usize = 3000;
    let server = TestServer::start(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.jsonl");
    write_lines(
        &file,
        &(0..LINES)
            .map(|i| registration_line(i, None))
            .collect::<Vec<_>>(),
    );
    let journal = dir.path().join("big.jsonl.twoplace-progress");

    // Killed without warning once a good part is in.
    let mut child = server
        .cli(ORIGIN)
        .args(["publish", "--batch-size", "5"])
        .arg(&file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let progress = std::fs::read(&journal)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|j| j["line"].as_u64())
            .unwrap_or(0);
        if progress >= 300 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the import ended before it could be interrupted"
        );
        assert!(std::time::Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(journal.exists(), "the interrupted run left its place");

    let run = server
        .cli(ORIGIN)
        .arg("publish")
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("resuming"), "{stderr}");
    assert!(!journal.exists());
    let mut destination = server.office(DESTINATION).await;
    let inbox = inbox_all(&mut destination).await;
    assert_eq!(inbox.len(), LINES, "each line stored once");
    let mut ids: Vec<_> = inbox
        .into_iter()
        .map(|d| d.envelope.unwrap().message_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), LINES);
    server.finish().await;
}

async fn follow_prints_what_arrives(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let cursor_file = dir.path().join("inbox.cursor");
    let mut follow = tokio::process::Command::from(server.cli(DESTINATION))
        .args(["inbox", "--follow", "--output", "json", "--cursor-file"])
        .arg(&cursor_file)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    // Subscribed once the first heartbeat saved the cursor.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !cursor_file.exists() {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut origin = server.office(ORIGIN).await;
    let outcomes = publish(
        &mut origin,
        vec![registration("live-1", DESTINATION, &zhang())],
    )
    .await;
    assert_eq!(
        status_of(&outcomes[0]),
        twoplace::proto::PublishStatus::Accepted
    );
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("printed within 10 s")
        .unwrap()
        .unwrap();
    let delivery: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(delivery["envelope"]["messageId"], "live-1");
    assert_eq!(delivery["senderOffice"], ORIGIN);
    // The cursor file follows what was printed, and is never seen cut
    // short while a heartbeat (every 200 ms) writes it again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..150 {
        let saved = std::fs::read_to_string(&cursor_file).unwrap();
        assert_eq!(saved, delivery["cursor"].as_str().unwrap());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    follow.kill().await.unwrap();
    server.finish().await;
}

/// `inbox --follow` runs unattended: a refusal (the wrong certificate)
/// must end it with the reason rather than retry forever, and a server
/// that is starting is waited for as long as it asks.
async fn follow_stops_at_a_refusal_and_waits_out_a_start(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let refused = tokio::process::Command::from(server.cli(&format!("admin:{ADMIN}")))
        .args(["inbox", "--follow"])
        .kill_on_drop(true)
        .output();
    let refused = tokio::time::timeout(Duration::from_secs(10), refused)
        .await
        .expect("a refusal ends the follow")
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("PermissionDenied"), "{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");

    let held = TalliesForgotten::hold(server.database_url()).await;
    let starting = server.replica_starting().await;
    let dir = tempfile::tempdir().unwrap();
    let cursor_file = dir.path().join("inbox.cursor");
    let mut follow = tokio::process::Command::from(starting.cli(DESTINATION))
        .args(["inbox", "--follow", "--cursor-file"])
        .arg(&cursor_file)
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(follow.stderr.take().unwrap()).lines();
    let told = tokio::time::timeout(Duration::from_secs(10), stderr.next_line())
        .await
        .expect("told to wait within 10 s")
        .unwrap()
        .unwrap();
    assert!(told.contains("the server is starting"), "{told}");
    assert!(
        told.ends_with("retrying in 5s"),
        "the server's delay: {told}"
    );
    held.release().await;
    // Subscribed once the first heartbeat saved the cursor.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !cursor_file.exists() {
        assert!(tokio::time::Instant::now() < deadline, "never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    follow.kill().await.unwrap();
    starting.finish().await;
    server.finish().await;
}

async fn cases_and_obligations_read_back(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    publish(&mut origin, vec![registration("reg", DESTINATION, &id)]).await;

    let show = server
        .cli(DESTINATION)
        .args(["case", "show", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        text.contains("张三")
            && text.contains("REGISTRATION")
            && text.contains("ConfirmRegistration"),
        "{text}"
    );

    let json = server
        .cli(DESTINATION)
        .args(["obligations", "--output", "json"])
        .output()
        .unwrap();
    let owed: Vec<serde_json::Value> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        owed.iter()
            .any(|o| o["kind"] == "OBLIGATION_KIND_CONFIRM_REGISTRATION")
    );
    assert!(owed.iter().all(|o| o["debtorOffice"] == DESTINATION));

    // The administrator's table names the regions.
    let backlog = server.cli("admin:34").arg("backlog").output().unwrap();
    let table = String::from_utf8_lossy(&backlog.stdout);
    assert!(
        backlog.status.success(),
        "{}",
        String::from_utf8_lossy(&backlog.stderr)
    );
    assert!(
        table.contains("3415") && table.contains("六安市") && table.contains("安徽省"),
        "{table}"
    );

    // A stranger gets one clear line, not a dump.
    let denied = server
        .cli(STRANGER)
        .args(["case", "show", &id])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let err = String::from_utf8_lossy(&denied.stderr);
    assert!(err.starts_with("error: NotFound"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    server.finish().await;
}

const ORIGINS: [&str; 7] = [
    "341502", "341503", "341504", "341522", "341523", "341524", "341525",
];

async fn the_simulators_totals_are_the_services(backend: Backend) {
    let server = TestServer::start(&backend).await;
    simulated_totals_are_the_services(&server, None, "120", "50").await;
    server.finish().await;
}

/// Enough traffic at once that groups of publishes are split by case
/// between writers running side by side, and two servers on one database
/// (the origins' offices publishing through one, the destinations' through
/// the other) racing on the same cases: every case still reconciles as if
/// its messages had come one by one.
async fn the_simulators_totals_hold_when_writers_run_side_by_side(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let replica = server.replica().await;
    simulated_totals_are_the_services(&server, None, "1500", "200").await;
    replica.finish().await;
    server.finish().await;
    let server = TestServer::start(&backend).await;
    let replica = server.replica().await;
    simulated_totals_are_the_services(&server, Some(&replica), "600", "100").await;
    replica.finish().await;
    server.finish().await;
}

/// Simulates `cases` people against `server` (or, given `destinations`,
/// writes the traffic to files and publishes the destination offices'
/// through that server, all offices at once) and compares the service's
/// totals with the simulator's.
async fn simulated_totals_are_the_services(
    server: &TestServer,
    destinations: Option<&TestServer>,
    cases: &str,
    batch_size: &str,
) {
    use twoplace::proto;
    let now = NOW
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut simulate = server.cli(ORIGIN);
    simulate.args([
        "simulate",
        "--cases",
        cases,
        "--seed",
        "3",
        "--batch-size",
        batch_size,
        "--now",
        &now,
    ]);
    if destinations.is_some() {
        simulate.arg("--out").arg(out.path());
    }
    let run = simulate.output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    if let Some(destinations) = destinations {
        let files: Vec<_> = std::fs::read_dir(out.path())
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        let offices: Vec<_> = files
            .iter()
            .map(|f| {
                twoplace::domain::RegionCode::parse(f.file_stem().unwrap().to_str().unwrap())
                    .unwrap()
            })
            .collect();
        // The simulator's offices, certified as `simulate` does for itself.
        twoplace::pki::add_offices(&server.pki.dir, &offices).unwrap();
        let mut publishers = Vec::new();
        for (path, office) in files.iter().zip(&offices) {
            let office = office.as_str();
            let through = if office.starts_with("34") {
                server
            } else {
                destinations
            };
            publishers.push(
                through
                    .cli(office)
                    .args(["publish", "--batch-size", batch_size])
                    .arg(path)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        for p in publishers {
            let done = p.wait_with_output().unwrap();
            assert!(
                done.status.success(),
                "{}",
                String::from_utf8_lossy(&done.stderr)
            );
        }
    }
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let expected = &summary["expected"];

    let mut actual = serde_json::Map::new();
    let mut add = |key: &str, n: u64| {
        let v = actual.entry(key).or_insert(serde_json::json!(0));
        *v = serde_json::json!(v.as_u64().unwrap() + n);
    };
    for origin in ORIGINS {
        let mut client =
            proto::exchange_client::ExchangeClient::new(server.office_channel(origin).await);
        let mut token = String::new();
        loop {
            let page = client
                .list_obligations(proto::ListObligationsRequest {
                    role: proto::ObligationRole::Creditor as i32,
                    page_size: 500,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for o in page
                .obligations
                .iter()
                .filter(|o| o.kind != proto::ObligationKind::Receipt as i32)
            {
                add("obligations", 1);
                let state = proto::ObligationState::try_from(o.state).unwrap();
                let key = match state {
                    proto::ObligationState::Open => "open",
                    proto::ObligationState::FulfilledOnTime => "fulfilled_on_time",
                    proto::ObligationState::FulfilledLate => "fulfilled_late",
                    _ => "cancelled",
                };
                add(key, 1);
                add("overdue", u64::from(o.overdue));
                add("escalated", u64::from(o.escalated));
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        let cases = client
            .list_cases(proto::ListCasesRequest {
                role: proto::CaseRole::Origin as i32,
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .cases;
        for c in cases {
            add("open_discrepancies", c.open_discrepancies as u64);
            add("orphans", c.orphans as u64);
        }
    }
    for key in [
        "obligations",
        "open",
        "overdue",
        "escalated",
        "fulfilled_on_time",
        "fulfilled_late",
        "cancelled",
        "open_discrepancies",
        "orphans",
    ] {
        assert_eq!(
            actual.get(key).cloned().unwrap_or(serde_json::json!(0)),
            expected[key],
            "{key}: service {actual:?}, simulator {expected}"
        );
    }
    assert!(
        expected["open_discrepancies"].as_u64().unwrap() > 0,
        "the simulation has disagreements"
    );
}

async fn replies_discharge_what_is_owed(backend: Backend) {
    use twoplace::proto::{self, envelope::Body};
    let server = TestServer::start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    let certificate = envelope(
        "cert",
        DESTINATION,
        &id,
        Body::CertificateIssued(proto::CertificateIssued {
            certificate_number: "LA-9".into(),
            issued_on: date(2024, 2, 1),
            valid_until: None,
        }),
    );
    let ask = envelope(
        "ask",
        DESTINATION,
        &id,
        Body::VerificationRequest(proto::VerificationRequest {
            urgency: proto::Urgency::Normal as i32,
            question: "地址?".into(),
            certificate_mismatch: false,
        }),
    );
    publish(
        &mut origin,
        vec![registration("reg", DESTINATION, &id), certificate, ask],
    )
    .await;

    let reply = |args: &[&str]| {
        let out = server
            .cli(DESTINATION)
            .arg("reply")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, stderr) = reply(&["confirm", &id, "--found", "--children", "2"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("accepted reply-"), "{stdout}");
    let (code, stdout, _) = reply(&["confirm", &id, "--found", "--children", "2"]);
    assert_eq!(code, Some(0));
    assert!(stdout.starts_with("already sent"), "{stdout}");
    assert_eq!(
        reply(&["verify", &id, "--certificate", "LA-9", "--valid"]).0,
        Some(0)
    );
    assert_eq!(
        reply(&[
            "feedback",
            &id,
            "--period",
            "2023Q4",
            "--checked-on",
            "2023-12-01"
        ])
        .0,
        Some(0)
    );
    assert_eq!(
        reply(&["answer", &id, "--request", "ask", "--text", "属实"]).0,
        Some(0)
    );
    // A wrong flag is one clear line.
    let (code, _, stderr) = reply(&[
        "feedback",
        &id,
        "--period",
        "2023Q4",
        "--not-checked",
        "asleep",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--not-checked asleep: one of not-reached"),
        "{stderr}"
    );

    let case = get_case(&mut origin, &id).await;
    let state = |key: &str| {
        let o = case.obligations.iter().find(|o| o.key == key).unwrap();
        proto::ObligationState::try_from(o.state).unwrap()
    };
    use proto::ObligationState::{FulfilledLate, FulfilledOnTime};
    assert_eq!(state("CONFIRM_REGISTRATION:310112"), FulfilledOnTime);
    assert_eq!(state("VERIFY_CERTIFICATE:LA-9"), FulfilledOnTime);
    assert_eq!(state("ANSWER_REQUEST:341502:ask"), FulfilledOnTime);
    assert_eq!(state("PERIODIC_FEEDBACK:2023Q4"), FulfilledLate);
    assert_eq!(case.discrepancies[0].field, "children");
    server.finish().await;
}

async fn a_csv_import_reports_bad_rows_by_line(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("march.csv");
    let id = |i| resident_number(i);
    let bad_check = {
        let good = id(3);
        format!(
            "{}{}",
            &good[..17],
            if good.ends_with('1') { '2' } else { '1' }
        )
    };
    write_lines(
        &file,
        &[
            "# exported 2024-04-01".into(),
            "kind,message_id,recipient_office,resident_id,origin_office,name,sex,left_on,periodic_checks".into(),
            format!("registration,,{DESTINATION},{},{ORIGIN},张三,,2024-03-01,false", id(1)),
            format!("registration,r-2,{DESTINATION},{},{ORIGIN},李四,,01/03/2024,false", id(2)),
            format!("registration,r-3,{DESTINATION},{bad_check},{ORIGIN},王五,,,false"),
            format!("teleport,r-4,{DESTINATION},{},{ORIGIN},,,,", id(4)),
            format!("\"registration\",r-5,{DESTINATION},{},{ORIGIN},\"赵, 六\",,2024-02-02,0", id(5)),
        ],
    );
    let run = server
        .cli(ORIGIN)
        .arg("publish")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        run.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(dir.path().join("march.csv.rejected.jsonl")).unwrap();
    let rejected: Vec<(u64, String)> = report
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["line"].as_u64().unwrap(),
                v["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (4, "INVALID_ROW".to_string()),
            (6, "INVALID_ROW".to_string()),
            (5, "BAD_CHECK_DIGIT".to_string()),
        ],
        "{report}"
    );
    let mut destination = server.office(DESTINATION).await;
    let names: Vec<String> = inbox_all(&mut destination)
        .await
        .into_iter()
        .map(|d| match d.envelope.unwrap().body {
            Some(twoplace::proto::envelope::Body::Registration(r)) => r.person.unwrap().name,
            _ => String::new(),
        })
        .collect();
    assert_eq!(names, ["张三", "赵, 六"], "quoted cells keep their commas");
    server.finish().await;
}

/// Against a server whose deadlines are two seconds, answers paced with a
/// long tail arrive partly late, as the simulator expects.
async fn a_paced_drill_has_late_answers(backend: Backend) {
    use twoplace::proto;
    let drill = twoplace::domain::policy::DEFAULT_POLICY
        .replace(
            "confirm_registration = \"30d\"",
            "confirm_registration = \"2s\"",
        )
        .replace(
            "verify_certificate = \"30d\"",
            "verify_certificate = \"2s\"",
        )
        .replace("answer_urgent = \"15d\"", "answer_urgent = \"2s\"")
        .replace("answer_normal = \"30d\"", "answer_normal = \"2s\"");
    let server = TestServer::start_opts(
        &backend,
        Options {
            policy: twoplace::domain::Policy::from_toml(&drill).unwrap(),
            real_clock: true,
            ..Options::default()
        },
    )
    .await;
    let run = server
        .cli(ORIGIN)
        .env_remove("TWOPLACE_AS")
        .args([
            "simulate", "--cases", "40", "--seed", "11", "--pace", "300ms",
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let expected = &summary["expected"];

    let (mut total, mut on_time, mut late, mut late_answers) = (0u64, 0u64, 0u64, 0u64);
    for origin in ORIGINS {
        let mut client =
            proto::exchange_client::ExchangeClient::new(server.office_channel(origin).await);
        let owed = client
            .list_obligations(proto::ListObligationsRequest {
                role: proto::ObligationRole::Creditor as i32,
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .obligations;
        for o in owed
            .iter()
            .filter(|o| o.kind != proto::ObligationKind::Receipt as i32)
        {
            total += 1;
            match proto::ObligationState::try_from(o.state).unwrap() {
                proto::ObligationState::FulfilledOnTime => on_time += 1,
                proto::ObligationState::FulfilledLate => {
                    late += 1;
                    if o.kind != proto::ObligationKind::PeriodicFeedback as i32 {
                        late_answers += 1;
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(total, expected["obligations"].as_u64().unwrap());
    assert!(late_answers > 0, "some answers came late: {expected}");
    assert!(on_time > 0);
    // The timing is real: on a loaded machine a few answers near a
    // deadline may land on the other side of it than planned.
    let close = |actual: u64, key: &str| {
        let want = expected[key].as_u64().unwrap();
        let slack = (want / 5).max(5);
        assert!(
            actual.abs_diff(want) <= slack,
            "{key}: service {actual}, simulator {want}"
        );
    };
    close(on_time, "fulfilled_on_time");
    close(late, "fulfilled_late");
    server.finish().await;
}

async fn an_import_waits_for_a_server_that_is_starting(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("april.jsonl");
    write_lines(
        &file,
        &[registration_line(1, None), registration_line(2, None)],
    );
    let held = TalliesForgotten::hold(server.database_url()).await;
    let starting = server.replica_starting().await;
    let import = starting
        .cli(ORIGIN)
        .arg("publish")
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Released once the import has been told to wait.
    let told = "Exchange/Publish\",code=\"UNAVAILABLE\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !starting.http_get("/metrics").await.1.contains(told) {
        assert!(
            std::time::Instant::now() < deadline,
            "the import was refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    held.release().await;
    let run = import.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(stderr.contains("the server is starting"), "{stderr}");
    let mut destination = starting.office(DESTINATION).await;
    assert_eq!(inbox_all(&mut destination).await.len(), 2);
    starting.finish().await;
    server.finish().await;
}
