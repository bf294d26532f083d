//! The administrators' dashboard on both backends: who may see it (client
//! certificate, signed token, nobody else), and — in Debian's Chromium,
//! driven by playwright-core — that the page shows what gRPC `Backlog` says
//! for the same data, and that drill-down works. Screenshots are saved under
//! `target/test-artifacts/`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use twoplace::proto;

backend_tests!(
    the_dashboard_is_for_administrators_only,
    the_page_shows_what_backlog_says,
);

fn token(server: &TestServer, who: &str) -> String {
    let run = server
        .cli(who)
        .args(["admin", "token", "--ttl", "1h"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8(run.stdout).unwrap().trim().to_string()
}

async fn the_dashboard_is_for_administrators_only(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let admin = token(&server, "admin:34");

    let (status, body) = server.https_get("/api/v1/whoami", None, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("twoplace admin token"), "{body}");
    let (status, body) = server.https_get("/api/v1/whoami", Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["region"], "34");
    assert_eq!(me["name"], "安徽省");
    // The administrator's client certificate works as well as a token.
    let cert = (server.pki.admin_cert(ADMIN), server.pki.admin_key(ADMIN));
    let (status, _) = server
        .https_get("/api/v1/backlog?region=3415", None, Some(cert))
        .await;
    assert_eq!(status, 200);
    // An office is not an administrator, by certificate or by token.
    let office = (
        server.pki.office_cert(ORIGIN),
        server.pki.office_key(ORIGIN),
    );
    let (status, _) = server
        .https_get("/api/v1/backlog", None, Some(office))
        .await;
    assert_eq!(status, 401);
    let run = server
        .cli(ORIGIN)
        .args(["admin", "token"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    // A forged or altered token.
    let mut forged = admin.clone();
    forged.insert(forged.len() - 5, 'A');
    let (status, _) = server
        .https_get("/api/v1/whoami", Some(&forged), None)
        .await;
    assert_eq!(status, 401);
    // Outside the region: forbidden, with the gRPC message.
    let (status, body) = server
        .https_get("/api/v1/backlog?region=31", Some(&admin), None)
        .await;
    assert_eq!(status, 403, "{body}");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["code"], "PERMISSION_DENIED");
    // Bad parameters name their field.
    let (status, body) = server
        .https_get("/api/v1/overdue?page_size=many", Some(&admin), None)
        .await;
    assert_eq!(status, 400);
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["violations"][0]["field"], "page_size");
    // The page itself is static and locked down.
    let (status, page) = server.https_get("/", None, None).await;
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/app.js\""));
    server.finish().await;
}

/// Where the browser test finds node, Chromium and playwright-core; None
/// (skip) where they are missing, unless the run requires them.
fn browser() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let ready = node_ok && chromium.exists() && dir.join("node_modules/playwright-core").exists();
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("TWOPLACE_REQUIRE_BROWSER").is_some();
    match (ready, required) {
        (true, _) => Some((dir, chromium)),
        (false, true) => panic!(
            "the browser test needs node, {} and `npm ci` in tests/browser (.ci/run installs them)",
            chromium.display()
        ),
        (false, false) => {
            eprintln!("skipping the browser test: no node, Chromium or playwright-core here");
            None
        }
    }
}

fn pct(rate: Option<f64>) -> String {
    rate.map_or("–".into(), |r| format!("{:.1}%", 100.0 * r))
}

async fn the_page_shows_what_backlog_says(backend: Backend) {
    let Some((dir, chromium)) = browser() else {
        return;
    };
    let server = TestServer::start(&backend).await;
    let now = NOW
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let run = server
        .cli(ORIGIN)
        .args(["simulate", "--cases", "150", "--seed", "5", "--now", &now])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // A month on, answers are overdue and some escalated.
    server.clock.advance(time::Duration::days(40));

    let grpc = server.admin_service().await;
    let backlog = |region: &str| {
        let request = proto::BacklogRequest {
            region: region.into(),
            ..Default::default()
        };
        let mut grpc = grpc.clone();
        async move { grpc.backlog(request).await.unwrap().into_inner() }
    };
    let province = backlog("").await;
    let city = backlog("3415").await;

    let url = format!(
        "https://{}/#token={}",
        server.dashboard_addr,
        token(&server, "admin:34")
    );
    let shots = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(backend.name());
    std::fs::create_dir_all(&shots).unwrap();
    let out = tokio::process::Command::new("node")
        .arg(dir.join("dashboard.mjs"))
        .args([url.as_str(), "3415", shots.to_str().unwrap()])
        .env("CHROMIUM", &chromium)
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "the browser script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["errors"], serde_json::json!([]), "errors in the page");

    // The province: its KPIs and one row per city, as gRPC says.
    let top = &seen["top"];
    assert_eq!(top["title"], "安徽省 34");
    let total = province.total.as_ref().unwrap();
    let (owes, owed) = (total.as_debtor.unwrap(), total.as_creditor.unwrap());
    assert!(
        owes.overdue > 0,
        "the scenario has overdue answers: {owes:?}"
    );
    let kpi = |side: &str, name: &str| top["kpis"][format!("{side}.{name}")].clone();
    assert_eq!(kpi("debtor", "open"), owes.open.to_string());
    assert_eq!(kpi("debtor", "overdue"), owes.overdue.to_string());
    assert_eq!(kpi("debtor", "escalated"), owes.escalated.to_string());
    assert_eq!(kpi("debtor", "on_time"), pct(owes.on_time_rate));
    assert_eq!(kpi("debtor", "receipts_on_time"), pct(owes.receipt_rate));
    assert_eq!(kpi("creditor", "open"), owed.open.to_string());
    assert_eq!(kpi("creditor", "overdue"), owed.overdue.to_string());
    assert_eq!(kpi("creditor", "feedback_given"), pct(owed.feedback_rate));
    assert_eq!(
        kpi("creditor", "open_discrepancies"),
        owed.open_discrepancies.to_string()
    );
    let rows = |seen: &serde_json::Value, b: &proto::BacklogResponse| {
        assert_eq!(
            seen["rows"].as_object().unwrap().len(),
            b.children.len(),
            "one row per child region"
        );
        for child in &b.children {
            let cells = &seen["rows"][&child.region];
            let d = child.as_debtor.unwrap();
            let c = child.as_creditor.unwrap();
            assert_eq!(cells[0], d.open.to_string(), "{}", child.region);
            assert_eq!(cells[1], d.overdue.to_string(), "{}", child.region);
            assert_eq!(cells[2], d.escalated.to_string(), "{}", child.region);
            assert_eq!(cells[3], pct(d.on_time_rate), "{}", child.region);
            assert_eq!(cells[6], c.open.to_string(), "{}", child.region);
            assert_eq!(cells[7], c.overdue.to_string(), "{}", child.region);
        }
    };
    rows(top, &province);
    assert!(top["trendLast"].as_str().unwrap().parse::<i64>().unwrap() > 0);
    // The oldest overdue items, masked.
    assert!(top["overdueRows"].as_u64().unwrap() > 0);
    assert!(top["overdueText"].as_str().unwrap().contains("********"));

    // Drilled into the city: its counties, as gRPC says.
    let drilled = &seen["drilled"];
    assert_eq!(drilled["title"], "六安市 3415");
    assert!(
        drilled["address"]
            .as_str()
            .unwrap()
            .ends_with("?region=3415")
    );
    assert!(!drilled["address"].as_str().unwrap().contains("token"));
    rows(drilled, &city);
    assert_eq!(
        drilled["kpis"]["debtor.overdue"],
        city.total.unwrap().as_debtor.unwrap().overdue.to_string()
    );
    // And back up by the breadcrumb.
    assert_eq!(seen["back"]["title"], "安徽省 34");
    assert!(
        seen["signIn"]
            .as_str()
            .unwrap()
            .contains("twoplace admin token")
    );
    assert!(shots.join("dashboard.png").exists());
    server.finish().await;
}
