//! Reconciliation over gRPC on both backends, with a test clock: what is
//! owed, when it is late, reminders exactly once (two servers too),
//! discrepancies, orphans, transfers, closures and receipts.

mod common;

use std::time::Duration;

use tonic::transport::Channel;

use common::*;
use twoplace::proto::{self, envelope::Body, exchange_client::ExchangeClient};

backend_tests!(
    an_unanswered_request_is_reminded_once_then_escalated_once,
    late_feedback_counts_as_fulfilled_late,
    a_discrepancy_is_found_and_a_correction_resolves_it,
    an_orphan_reply_is_matched_when_its_request_arrives,
    a_transfer_moves_what_is_owed_and_a_closure_cancels_it,
    receipts_are_owed_until_acknowledged,
    a_new_period_opens_its_feedback_obligation,
    two_servers_open_a_new_period_once_beside_publishes,
    two_servers_remind_exactly_once,
    acknowledgements_close_receipts_beside_two_sweepers,
    the_policy_is_readable,
    obligations_are_filtered_as_asked,
);

/// The sweeper runs every 50 ms here.
async fn start(backend: &Backend) -> TestServer {
    TestServer::start_opts(
        backend,
        Options {
            sweep_interval: Duration::from_millis(50),
            ..Options::default()
        },
    )
    .await
}

fn accepted(outcomes: &[proto::PublishOutcome]) {
    for o in outcomes {
        assert_eq!(
            status_of(o),
            proto::PublishStatus::Accepted,
            "{}: {:?}",
            o.message_id,
            o.violations
        );
    }
}

/// A registration without periodic checks, so only what a test asks for
/// is owed.
fn plain_registration(id: &str, to: &str, resident_id: &str) -> proto::Envelope {
    let mut m = registration(id, to, resident_id);
    if let Some(Body::Registration(r)) = &mut m.body {
        r.periodic_checks = false;
    }
    m
}

fn request(id: &str, to: &str, resident_id: &str, urgency: proto::Urgency) -> proto::Envelope {
    envelope(
        id,
        to,
        resident_id,
        Body::VerificationRequest(proto::VerificationRequest {
            urgency: urgency as i32,
            question: "请核实".into(),
            certificate_mismatch: false,
        }),
    )
}

fn reply(id: &str, to: &str, resident_id: &str, request: &str) -> proto::Envelope {
    envelope(
        id,
        to,
        resident_id,
        Body::VerificationReply(proto::VerificationReply {
            request_message_id: request.into(),
            answer: "属实".into(),
        }),
    )
}

async fn obligations(
    client: &mut ExchangeClient<Channel>,
    role: proto::ObligationRole,
    overdue_only: bool,
) -> Vec<proto::Obligation> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_obligations(proto::ListObligationsRequest {
                role: role as i32,
                overdue_only,
                page_size: 3,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.obligations);
        if page.next_page_token.is_empty() {
            return all;
        }
        token = page.next_page_token;
    }
}

fn find<'a>(list: &'a [proto::Obligation], key: &str) -> &'a proto::Obligation {
    list.iter().find(|o| o.key == key).unwrap_or_else(|| {
        panic!(
            "no {key} in {:?}",
            list.iter().map(|o| &o.key).collect::<Vec<_>>()
        )
    })
}

/// The reminders the exchange sent to a client, by message id.
async fn reminders(client: &mut ExchangeClient<Channel>) -> Vec<String> {
    inbox_all(client)
        .await
        .into_iter()
        .filter(|d| d.sender_office == "twoplace")
        .map(|d| d.envelope.unwrap().message_id)
        .collect()
}

/// Waits (bounded) until `check` holds, giving the sweeper time.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_unanswered_request_is_reminded_once_then_escalated_once(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    accepted(
        &publish(
            &mut origin,
            vec![
                plain_registration("reg", DESTINATION, &id),
                request("ask", DESTINATION, &id, proto::Urgency::Urgent),
            ],
        )
        .await,
    );
    // The destination acknowledges receipt, so only the answers are owed.
    let last = inbox_all(&mut destination).await.pop().unwrap().cursor;
    destination
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: last,
            messages: vec![],
        })
        .await
        .unwrap();
    let owed = obligations(&mut destination, proto::ObligationRole::Debtor, false).await;
    let ask = find(&owed, "ANSWER_REQUEST:341502:ask");
    assert_eq!(ask.detail, "urgent");
    assert!(!ask.overdue);

    // 17 days later the urgent answer (15 days, to midnight) is a day
    // overdue: one reminder.
    server.clock.advance(time::Duration::days(17));
    eventually("the overdue reminder", || async {
        reminders(&mut server.office(DESTINATION).await).await.len() == 1
    })
    .await;
    let overdue = obligations(&mut destination, proto::ObligationRole::Debtor, true).await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].key, "ANSWER_REQUEST:341502:ask");
    assert!(overdue[0].days_overdue >= 1 && !overdue[0].escalated);
    // More sweeps, no more reminders.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = reminders(&mut destination).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].ends_with("-overdue"));

    // Past twice the window: escalated, reminded once more; the 30-day
    // confirmation is overdue too by now.
    server.clock.advance(time::Duration::days(16));
    eventually("the escalation", || async {
        reminders(&mut server.office(DESTINATION).await)
            .await
            .iter()
            .any(|m| m.ends_with("-escalated"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = reminders(&mut destination).await;
    let overdue = obligations(&mut destination, proto::ObligationRole::Debtor, true).await;
    let escalated = overdue.iter().filter(|o| o.escalated).count();
    assert_eq!(
        sent.iter().filter(|m| m.ends_with("-overdue")).count(),
        overdue.len(),
        "one overdue reminder per overdue obligation: {sent:?}"
    );
    assert_eq!(
        sent.iter().filter(|m| m.ends_with("-escalated")).count(),
        escalated
    );
    assert!(find(&overdue, "ANSWER_REQUEST:341502:ask").escalated);

    // A late answer still fulfils it, counted late.
    accepted(&publish(&mut destination, vec![reply("ans", ORIGIN, &id, "ask")]).await);
    let owed = obligations(&mut origin, proto::ObligationRole::Creditor, false).await;
    assert_eq!(
        find(&owed, "ANSWER_REQUEST:341502:ask").state,
        proto::ObligationState::FulfilledLate as i32
    );
    server.finish().await;
}

async fn late_feedback_counts_as_fulfilled_late(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    // Left 2023-03-01; today is 2024-03-01: 2023Q1..2024Q1 are owed.
    accepted(&publish(&mut origin, vec![registration("reg", DESTINATION, &id)]).await);
    let feedback = |msg: &str, period: &str| {
        envelope(
            msg,
            ORIGIN,
            &id,
            Body::PregnancyCheckFeedback(proto::PregnancyCheckFeedback {
                period: period.into(),
                result: Some(proto::pregnancy_check_feedback::Result::Checked(
                    proto::pregnancy_check_feedback::Checked {
                        checked_on: date(2023, 12, 1),
                        outcome: proto::CheckOutcome::Normal as i32,
                    },
                )),
            }),
        )
    };
    accepted(&publish(&mut destination, vec![feedback("fb-q4", "2023Q4")]).await);
    let owed = obligations(&mut origin, proto::ObligationRole::Creditor, false).await;
    let periods: Vec<_> = owed
        .iter()
        .filter(|o| o.kind == proto::ObligationKind::PeriodicFeedback as i32)
        .map(|o| (o.detail.as_str(), o.state))
        .collect();
    use proto::ObligationState::{FulfilledLate, Open};
    assert_eq!(
        periods,
        [
            ("2023Q1", Open as i32),
            ("2023Q2", Open as i32),
            ("2023Q3", Open as i32),
            ("2023Q4", FulfilledLate as i32),
            ("2024Q1", Open as i32),
        ],
        "2023Q4 was due 2024-01-20: answered on 2024-03-01, late"
    );
    let q1 = find(&owed, "PERIODIC_FEEDBACK:2024Q1");
    assert!(!q1.overdue, "due 2024-04-20");
    assert_eq!(q1.debtor_office, DESTINATION);
    server.finish().await;
}

async fn a_discrepancy_is_found_and_a_correction_resolves_it(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    accepted(
        &publish(
            &mut origin,
            vec![plain_registration("reg", DESTINATION, &id)],
        )
        .await,
    );
    let observed = envelope(
        "conf",
        ORIGIN,
        &id,
        Body::RegistrationConfirmation(proto::RegistrationConfirmation {
            finding: proto::Finding::Found as i32,
            observed: Some(proto::Person {
                children: Some(2),
                ..person("张三")
            }),
            ..Default::default()
        }),
    );
    accepted(&publish(&mut destination, vec![observed]).await);
    let case = get_case(&mut origin, &id).await;
    assert_eq!(case.discrepancies.len(), 1);
    let d = &case.discrepancies[0];
    assert_eq!(
        (
            d.field.as_str(),
            d.origin_value.as_str(),
            d.destination_value.as_str()
        ),
        ("children", "1", "2")
    );
    assert!(d.resolved_at.is_none());

    server.clock.advance(time::Duration::days(2));
    let mut fixed = plain_registration("fix", DESTINATION, &id);
    if let Some(Body::Registration(mut r)) = fixed.body.take() {
        r.person.as_mut().unwrap().children = Some(2);
        fixed.body = Some(Body::Correction(proto::Correction {
            target_message_id: "reg".into(),
            reason: "子女数录入错误".into(),
            corrected: Some(proto::correction::Corrected::Registration(r)),
        }));
    }
    accepted(&publish(&mut origin, vec![fixed]).await);
    let case = get_case(&mut destination, &id).await;
    let d = &case.discrepancies[0];
    assert_eq!(d.resolved_by, "fix");
    assert!(d.resolved_at.is_some());
    server.finish().await;
}

async fn an_orphan_reply_is_matched_when_its_request_arrives(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    accepted(
        &publish(
            &mut origin,
            vec![plain_registration("reg", DESTINATION, &id)],
        )
        .await,
    );
    // The answer overtakes the question.
    accepted(&publish(&mut destination, vec![reply("ans", ORIGIN, &id, "ask")]).await);
    let case = get_case(&mut origin, &id).await;
    assert_eq!(case.orphans.len(), 1);
    assert_eq!(case.orphans[0].message_id, "ans");
    assert_eq!(case.orphans[0].awaiting, "VERIFICATION_REQUEST ask");

    server.clock.advance(time::Duration::hours(3));
    accepted(
        &publish(
            &mut origin,
            vec![request("ask", DESTINATION, &id, proto::Urgency::Normal)],
        )
        .await,
    );
    let case = get_case(&mut origin, &id).await;
    assert!(case.orphans.is_empty());
    let ask = find(&case.obligations, "ANSWER_REQUEST:341502:ask");
    assert_eq!(ask.state, proto::ObligationState::FulfilledOnTime as i32);
    assert_eq!(ask.closed_by, "ans");
    server.finish().await;
}

async fn a_transfer_moves_what_is_owed_and_a_closure_cancels_it(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    let certificate = envelope(
        "cert",
        DESTINATION,
        &id,
        Body::CertificateIssued(proto::CertificateIssued {
            certificate_number: "LA-1".into(),
            issued_on: date(2024, 2, 1),
            valid_until: None,
        }),
    );
    accepted(
        &publish(
            &mut origin,
            vec![
                plain_registration("reg", DESTINATION, &id),
                certificate,
                request("ask", DESTINATION, &id, proto::Urgency::Normal),
            ],
        )
        .await,
    );
    server.clock.advance(time::Duration::days(5));
    let moved = transfer("move", NEXT_DESTINATION, &id, date(2024, 3, 5));
    accepted(&publish(&mut origin, vec![moved]).await);
    let mut next = server.office(NEXT_DESTINATION).await;
    let owed = obligations(&mut next, proto::ObligationRole::Debtor, false).await;
    let keys: Vec<_> = owed
        .iter()
        .filter(|o| o.kind != proto::ObligationKind::Receipt as i32)
        .map(|o| o.key.as_str())
        .collect();
    assert_eq!(
        keys,
        ["VERIFY_CERTIFICATE:LA-1", "CONFIRM_REGISTRATION:440306"]
    );
    let mut old = server.office(DESTINATION).await;
    let owed = obligations(&mut old, proto::ObligationRole::Debtor, false).await;
    assert_eq!(
        find(&owed, "ANSWER_REQUEST:341502:ask").state,
        proto::ObligationState::Open as i32,
        "what the old destination was asked stays with it"
    );
    assert_eq!(
        find(&owed, "CONFIRM_REGISTRATION:310112").state,
        proto::ObligationState::Cancelled as i32
    );
    assert!(
        owed.iter().all(|o| o.resident_id != id),
        "a past destination sees the ID masked"
    );

    let bye = envelope(
        "bye",
        NEXT_DESTINATION,
        &id,
        Body::Closure(proto::Closure {
            reason: proto::ClosureReason::ReturnedHome as i32,
            closed_on: date(2024, 3, 6),
            note: String::new(),
        }),
    );
    accepted(&publish(&mut origin, vec![bye]).await);
    let case = get_case(&mut origin, &id).await;
    for o in case
        .obligations
        .iter()
        .filter(|o| o.kind != proto::ObligationKind::Receipt as i32)
    {
        assert_ne!(o.state, proto::ObligationState::Open as i32, "{}", o.key);
    }
    assert_eq!(
        find(&case.obligations, "ANSWER_REQUEST:341502:ask").closed_by,
        "closed by bye"
    );
    server.finish().await;
}

async fn receipts_are_owed_until_acknowledged(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let mut destination = server.office(DESTINATION).await;
    let id = zhang();
    accepted(
        &publish(
            &mut origin,
            vec![
                plain_registration("reg", DESTINATION, &id),
                reminder("nudge", DESTINATION, &id),
            ],
        )
        .await,
    );
    let receipts = |list: Vec<proto::Obligation>| -> Vec<proto::Obligation> {
        list.into_iter()
            .filter(|o| o.kind == proto::ObligationKind::Receipt as i32)
            .collect()
    };
    let owed = receipts(obligations(&mut destination, proto::ObligationRole::Debtor, false).await);
    assert_eq!(owed.len(), 2);
    let first = inbox_all(&mut destination).await.remove(0);
    destination
        .acknowledge(proto::AcknowledgeRequest {
            up_to_cursor: first.cursor,
            messages: vec![],
        })
        .await
        .unwrap();
    server.clock.advance(time::Duration::days(4));
    let owed = receipts(obligations(&mut destination, proto::ObligationRole::Debtor, false).await);
    let states: Vec<_> = owed
        .iter()
        .map(|o| (o.detail.as_str(), o.state, o.overdue))
        .collect();
    assert_eq!(
        states,
        [
            ("reg", proto::ObligationState::FulfilledOnTime as i32, false),
            ("nudge", proto::ObligationState::Open as i32, true),
        ]
    );
    server.finish().await;
}

async fn a_new_period_opens_its_feedback_obligation(backend: Backend) {
    let server = start(&backend).await;
    // The last hour of 2024Q1 in Shanghai.
    server
        .clock
        .set(time::macros::datetime!(2024-03-31 23:00 +8));
    let mut origin = server.office(ORIGIN).await;
    let id = zhang();
    accepted(&publish(&mut origin, vec![registration("reg", DESTINATION, &id)]).await);
    let periods = |list: &[proto::Obligation]| -> Vec<String> {
        list.iter()
            .filter(|o| o.kind == proto::ObligationKind::PeriodicFeedback as i32)
            .map(|o| o.detail.clone())
            .collect()
    };
    let owed = obligations(&mut origin, proto::ObligationRole::Creditor, false).await;
    assert_eq!(periods(&owed).last().map(String::as_str), Some("2024Q1"));

    server.clock.advance(time::Duration::hours(2));
    eventually("the 2024Q2 obligation", || async {
        let owed = obligations(
            &mut server.office(ORIGIN).await,
            proto::ObligationRole::Creditor,
            false,
        )
        .await;
        periods(&owed).last().map(String::as_str) == Some("2024Q2")
    })
    .await;
    server.finish().await;
}

/// Every case reaches a new period at the same instant; both servers'
/// sweepers reconcile them beside publishers (under the cases' locks), and
/// feedback for the new period races them to half the cases.
async fn two_servers_open_a_new_period_once_beside_publishes(backend: Backend) {
    let server = start(&backend).await;
    let replica = server.replica().await;
    // The last hour of 2024Q1 in Shanghai.
    server
        .clock
        .set(time::macros::datetime!(2024-03-31 23:00 +8));
    let ids: Vec<String> = (0..30)
        .map(|i| resident(&format!("34150219850615{i:02}4")))
        .collect();
    let mut origin = server.office(ORIGIN).await;
    let registrations = ids
        .iter()
        .enumerate()
        .map(|(i, id)| registration(&format!("reg-{i}"), DESTINATION, id))
        .collect();
    accepted(&publish(&mut origin, registrations).await);

    server.clock.advance(time::Duration::hours(2));
    let feedback = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 2 == 0)
        .map(|(i, id)| {
            envelope(
                &format!("fb-{i}"),
                ORIGIN,
                id,
                Body::PregnancyCheckFeedback(proto::PregnancyCheckFeedback {
                    period: "2024Q2".into(),
                    result: Some(proto::pregnancy_check_feedback::Result::Checked(
                        proto::pregnancy_check_feedback::Checked {
                            checked_on: date(2024, 4, 1),
                            outcome: proto::CheckOutcome::Normal as i32,
                        },
                    )),
                }),
            )
        })
        .collect();
    accepted(&publish(&mut server.office(DESTINATION).await, feedback).await);
    let q2 = |list: Vec<proto::Obligation>| -> Vec<(String, i32)> {
        let mut q2: Vec<_> = list
            .into_iter()
            .filter(|o| o.kind == proto::ObligationKind::PeriodicFeedback as i32)
            .filter(|o| o.detail == "2024Q2")
            .map(|o| (o.resident_id, o.state))
            .collect();
        q2.sort();
        q2
    };
    eventually("every case's 2024Q2 obligation", || async {
        let owed = obligations(
            &mut server.office(ORIGIN).await,
            proto::ObligationRole::Creditor,
            false,
        )
        .await;
        q2(owed).len() >= ids.len()
    })
    .await;
    // Let both sweepers run a few more times.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owed = q2(obligations(&mut origin, proto::ObligationRole::Creditor, false).await);
    let mut expected: Vec<(String, i32)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let state = if i % 2 == 0 {
                proto::ObligationState::FulfilledOnTime
            } else {
                proto::ObligationState::Open
            };
            (id.clone(), state as i32)
        })
        .collect();
    expected.sort();
    assert_eq!(owed, expected, "one each, fulfilled where fed back");
    replica.finish().await;
    server.finish().await;
}

async fn two_servers_remind_exactly_once(backend: Backend) {
    let server = start(&backend).await;
    let replica = server.replica().await;
    let mut origin = server.office(ORIGIN).await;
    let mut batch = Vec::new();
    for i in 0..20 {
        let id = resident(&format!("34150219850615{i:02}2"));
        batch.push(plain_registration(&format!("reg-{i}"), DESTINATION, &id));
        batch.push(request(
            &format!("ask-{i}"),
            DESTINATION,
            &id,
            proto::Urgency::Urgent,
        ));
    }
    accepted(&publish(&mut origin, batch).await);
    // 20 confirmations, 20 answers and 40 receipts are owed; 32 days on,
    // all are overdue, and the answers (15 days) and receipts (3) escalated.
    server.clock.advance(time::Duration::days(32));
    let mut destination = server.office(DESTINATION).await;
    eventually("80 reminders", || async {
        reminders(&mut server.office(DESTINATION).await).await.len() >= 80
    })
    .await;
    // Let both sweepers run a few more times.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut sent = reminders(&mut destination).await;
    let overdue = obligations(&mut destination, proto::ObligationRole::Debtor, true).await;
    assert_eq!(overdue.len(), 80);
    let escalated = overdue.iter().filter(|o| o.escalated).count();
    assert_eq!(escalated, 20 + 40, "the urgent answers and the receipts");
    assert_eq!(
        sent.len(),
        overdue.len() + escalated,
        "once per obligation and threshold"
    );
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), overdue.len() + escalated, "and never twice");
    // The sweep flagged every case's obligations at once; the publishes
    // that answer them now start from the flagged cases, not from those
    // the server kept from their first publish (`finish` recounts the
    // tallies the flags are part of).
    let answers = (0..20)
        .map(|i| {
            let id = resident(&format!("34150219850615{i:02}2"));
            reply(&format!("ans-{i}"), ORIGIN, &id, &format!("ask-{i}"))
        })
        .collect();
    accepted(&publish(&mut destination, answers).await);
    let owed = obligations(&mut destination, proto::ObligationRole::Debtor, false).await;
    for i in 0..20 {
        assert_eq!(
            find(&owed, &format!("ANSWER_REQUEST:341502:ask-{i}")).state,
            proto::ObligationState::FulfilledLate as i32
        );
    }
    replica.finish().await;
    server.finish().await;
}

/// Acknowledgements run beside the sweepers (and each other): the receipts
/// they close are being flagged overdue, then escalated, by two servers'
/// sweepers at once. Each receipt ends closed, each reminder is sent at
/// most once, and `finish` recounts the tallies both kinds of write change.
async fn acknowledgements_close_receipts_beside_two_sweepers(backend: Backend) {
    let server = start(&backend).await;
    let replica = server.replica().await;
    let mut origin = server.office(ORIGIN).await;
    let registrations = (0..60)
        .map(|i| {
            let id = resident(&format!("34150219850615{i:02}6"));
            plain_registration(&format!("reg-{i}"), DESTINATION, &id)
        })
        .collect();
    accepted(&publish(&mut origin, registrations).await);
    // Receipts are due in 3 days and escalate in 6: a third acknowledged
    // while they turn overdue, the rest while they escalate.
    server.clock.advance(time::Duration::days(4));
    acknowledge_through(&server, &replica, 0..20).await;
    server.clock.advance(time::Duration::days(3));
    acknowledge_through(&server, &replica, 20..60).await;
    // Let both sweepers run a few more times.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut destination = server.office(DESTINATION).await;
    let owed = obligations(&mut destination, proto::ObligationRole::Debtor, false).await;
    for i in 0..60 {
        let receipt = find(&owed, &format!("RECEIPT:{DESTINATION}:{ORIGIN}:reg-{i}"));
        assert_eq!(
            receipt.state,
            proto::ObligationState::FulfilledLate as i32,
            "reg-{i}"
        );
    }
    let mut sent = reminders(&mut destination).await;
    let all = sent.len();
    sent.sort();
    sent.dedup();
    assert_eq!(sent.len(), all, "no reminder twice");
    replica.finish().await;
    server.finish().await;
}

/// Acknowledges the registrations `reg-<i>` in `range` one message at a
/// time, the even ones through one server while the odd ones go through
/// the other.
async fn acknowledge_through(
    server: &TestServer,
    replica: &TestServer,
    range: std::ops::Range<usize>,
) {
    let even = range.clone().filter(|i| i % 2 == 0);
    let odd = range.filter(|i| i % 2 == 1);
    tokio::join!(
        acknowledge_each(server.office(DESTINATION).await, even),
        acknowledge_each(replica.office(DESTINATION).await, odd),
    );
}

async fn acknowledge_each(mut client: ExchangeClient<Channel>, each: impl Iterator<Item = usize>) {
    for i in each {
        client
            .acknowledge(proto::AcknowledgeRequest {
                up_to_cursor: String::new(),
                messages: vec![proto::MessageRef {
                    sender_office: ORIGIN.into(),
                    message_id: format!("reg-{i}"),
                }],
            })
            .await
            .unwrap();
    }
}

async fn the_policy_is_readable(backend: Backend) {
    let server = start(&backend).await;
    let policy = server
        .admin()
        .await
        .get_policy(proto::GetPolicyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(policy.period, "quarter");
    assert_eq!(policy.feedback_due_day, 20);
    assert_eq!(policy.deadlines["answer_urgent"], "15d");
    assert!(policy.toml.contains("answer_certificate_mismatch = \"7d\""));
    server.finish().await;
}

async fn obligations_are_filtered_as_asked(backend: Backend) {
    let server = start(&backend).await;
    let mut origin = server.office(ORIGIN).await;
    let a = zhang();
    let b = resident("34150219850615012");
    publish(
        &mut origin,
        vec![
            plain_registration("reg-a", DESTINATION, &a),
            request("ask-a", DESTINATION, &a, proto::Urgency::Urgent),
            plain_registration("reg-b", NEXT_DESTINATION, &b),
        ],
    )
    .await;
    let list = |req: proto::ListObligationsRequest| {
        let server = &server;
        async move {
            let mut client = server.office(ORIGIN).await;
            let mut keys: Vec<String> = client
                .list_obligations(proto::ListObligationsRequest {
                    role: proto::ObligationRole::Creditor as i32,
                    page_size: 100,
                    ..req
                })
                .await
                .unwrap()
                .into_inner()
                .obligations
                .into_iter()
                .map(|o| o.key)
                .filter(|k| !k.starts_with("RECEIPT"))
                .collect();
            keys.sort();
            keys
        }
    };
    assert_eq!(
        list(proto::ListObligationsRequest {
            kind: proto::ObligationKind::AnswerRequest as i32,
            ..Default::default()
        })
        .await,
        ["ANSWER_REQUEST:341502:ask-a"]
    );
    assert_eq!(
        list(proto::ListObligationsRequest {
            counterpart_office: NEXT_DESTINATION.into(),
            ..Default::default()
        })
        .await,
        ["CONFIRM_REGISTRATION:440306"]
    );
    // The urgent answer is due before the confirmations.
    let ask_due = time::OffsetDateTime::from_unix_timestamp(NOW.unix_timestamp()).unwrap()
        + time::Duration::days(20);
    assert_eq!(
        list(proto::ListObligationsRequest {
            due_before: Some(prost_types::Timestamp {
                seconds: ask_due.unix_timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        })
        .await,
        ["ANSWER_REQUEST:341502:ask-a"]
    );
    assert_eq!(
        list(proto::ListObligationsRequest {
            due_after: Some(prost_types::Timestamp {
                seconds: ask_due.unix_timestamp(),
                nanos: 0,
            }),
            ..Default::default()
        })
        .await,
        ["CONFIRM_REGISTRATION:310112", "CONFIRM_REGISTRATION:440306"]
    );
    // Answered, it leaves the open ones and joins the fulfilled.
    publish(
        &mut server.office(DESTINATION).await,
        vec![reply("ans", ORIGIN, &a, "ask-a")],
    )
    .await;
    let open = list(proto::ListObligationsRequest {
        state: proto::ObligationState::Open as i32,
        ..Default::default()
    })
    .await;
    assert!(
        !open.contains(&"ANSWER_REQUEST:341502:ask-a".to_string()),
        "{open:?}"
    );
    assert_eq!(
        list(proto::ListObligationsRequest {
            state: proto::ObligationState::FulfilledOnTime as i32,
            ..Default::default()
        })
        .await,
        ["ANSWER_REQUEST:341502:ask-a"]
    );
    let err = server
        .office(ORIGIN)
        .await
        .list_obligations(proto::ListObligationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::InvalidArgument,
        "a role is required"
    );
    server.finish().await;
}
