//! The queries that must stay fast at scale use their indexes: an office's
//! overdue obligations, and its obligations oldest-due first, are index
//! range scans, not table scans. The plans are printed (`--nocapture`).

mod common;

use common::*;
use twoplace::store::list_obligations_sql;

backend_tests!(
    listing_obligations_is_an_index_range_scan,
    a_growing_database_is_analyzed_as_it_grows
);

const ROWS: i64 = 300_000;

/// One case owning ROWS obligations spread over 2,000 debtor offices, a
/// tenth of them open.
const FILL_POSTGRES: &str = "INSERT INTO obligations (case_id, key, kind, debtor, creditor, \
     state, opened_us, due_us, escalates_us, detail) \
     SELECT $1, 'K' || g, 'ANSWER_REQUEST', (310000 + g % 2000)::text, '341502', \
     CASE WHEN g % 10 = 0 THEN 'OPEN' ELSE 'FULFILLED_ON_TIME' END, g, g * 1000, g * 2000, '' \
     FROM generate_series(1, $2) g";

const FILL_SQLITE: &str = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < $2) \
     INSERT INTO obligations (case_id, key, kind, debtor, creditor, state, opened_us, due_us, \
     escalates_us, detail) \
     SELECT $1, 'K' || n, 'ANSWER_REQUEST', CAST(310000 + n % 2000 AS TEXT), '341502', \
     CASE WHEN n % 10 = 0 THEN 'OPEN' ELSE 'FULFILLED_ON_TIME' END, n, n * 1000, n * 2000, '' \
     FROM g";

/// The rows go in behind the store's back, like a database from before the
/// tallies existed: the next start counts them.
const FORGET_TALLIES: &str = "DELETE FROM tallies_built";

const CASE: &str = "INSERT INTO cases (resident_id, origin, destination, status, state, \
     created_us, updated_us) VALUES ('11010519491231002X', '341502', '310112', 'active', '{}', 0, 0) \
     RETURNING id";

async fn listing_obligations_is_an_index_range_scan(backend: Backend) {
    let server = TestServer::start(&backend).await;
    let url = server.database_url().to_string();
    let overdue = list_obligations_sql(true, true);
    let all = list_obligations_sql(true, false);
    let (overdue_plan, all_plan) = match backend {
        Backend::Postgres { .. } => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let case_id: i64 = sqlx::query_scalar(CASE).fetch_one(&pool).await.unwrap();
            sqlx::query(FILL_POSTGRES)
                .bind(case_id)
                .bind(ROWS)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            sqlx::query(FORGET_TALLIES).execute(&pool).await.unwrap();
            let mut plans = Vec::new();
            for (sql, overdue_at) in [(&overdue, ROWS * 1000), (&all, 0)] {
                let lines: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN {sql}")))
                        .bind("310112")
                        .bind("")
                        .bind("")
                        .bind(overdue_at)
                        .bind("")
                        .bind(i64::MIN)
                        .bind(i64::MAX)
                        .bind(i64::MIN)
                        .bind(i64::MIN)
                        .bind(101i64)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                plans.push(lines.join("\n"));
            }
            pool.close().await;
            (plans[0].clone(), plans[1].clone())
        }
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite:");
            let pool = sqlx::SqlitePool::connect(&format!("sqlite:{path}"))
                .await
                .unwrap();
            let case_id: i64 = sqlx::query_scalar(CASE).fetch_one(&pool).await.unwrap();
            sqlx::query(FILL_SQLITE)
                .bind(case_id)
                .bind(ROWS)
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            sqlx::query(FORGET_TALLIES).execute(&pool).await.unwrap();
            let mut plans = Vec::new();
            for (sql, overdue_at) in [(&overdue, ROWS * 1000), (&all, 0)] {
                let rows: Vec<(i64, i64, i64, String)> =
                    sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                        .bind("310112")
                        .bind("")
                        .bind("")
                        .bind(overdue_at)
                        .bind("")
                        .bind(i64::MIN)
                        .bind(i64::MAX)
                        .bind(i64::MIN)
                        .bind(i64::MIN)
                        .bind(101i64)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                plans.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"));
            }
            pool.close().await;
            (plans[0].clone(), plans[1].clone())
        }
    };
    let store = twoplace::store::connect(&url).await.unwrap();
    assert_eq!(
        store.build_tallies().await.unwrap(),
        None,
        "built at connect"
    );
    drop(store);
    println!("{backend:?}: an office's overdue obligations ({ROWS} rows)\n{overdue_plan}\n");
    println!("{backend:?}: an office's obligations, oldest due first\n{all_plan}\n");
    for plan in [&overdue_plan, &all_plan] {
        assert!(
            !plan.contains("Seq Scan on obligations")
                && !plan.contains("SCAN o\n")
                && !plan.ends_with("SCAN o"),
            "a table scan:\n{plan}"
        );
    }
    assert!(
        overdue_plan.contains("obligations_open_by_debtor"),
        "{overdue_plan}"
    );
    assert!(all_plan.contains("obligations_by_debtor"), "{all_plan}");
    server.finish().await;
}

/// A publishing connection keeps its generic plans until a table they read
/// is analyzed, and those made on a young database scan its small tables
/// whole: the server analyzes the tables publishes write once they have
/// outgrown their statistics, without waiting for autovacuum.
async fn a_growing_database_is_analyzed_as_it_grows(backend: Backend) {
    const GROWN: i64 = 5_000;
    let server = TestServer::start(&backend).await;
    let url = server.database_url().to_string();
    match backend {
        Backend::Postgres { .. } => {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let case_id: i64 = sqlx::query_scalar(CASE).fetch_one(&pool).await.unwrap();
            sqlx::query(FILL_POSTGRES)
                .bind(case_id)
                .bind(GROWN)
                .execute(&pool)
                .await
                .unwrap();
            // The filling connection reports its changes as it closes.
            pool.close().await;
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            let analyzed = |table: &'static str| {
                let pool = pool.clone();
                async move {
                    sqlx::query_scalar::<_, bool>(
                        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables \
                         WHERE relname = $1 AND schemaname = current_schema()",
                    )
                    .bind(table)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
                }
            };
            let waited = std::time::Instant::now();
            while !analyzed("obligations").await {
                assert!(
                    waited.elapsed() < std::time::Duration::from_secs(30),
                    "{GROWN} new obligations, not analyzed after 30 s"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            // Only what grew: the messages table holds nothing yet.
            assert!(!analyzed("messages").await);
            // The tallies count the rows that went in behind the store's
            // back at the next start.
            sqlx::query(FORGET_TALLIES).execute(&pool).await.unwrap();
            pool.close().await;
            drop(twoplace::store::connect(&url).await.unwrap());
        }
        Backend::Sqlite => {
            let store = twoplace::store::connect(&url).await.unwrap();
            assert_eq!(store.analyze_grown_tables().await.unwrap(), 0);
        }
    }
    server.finish().await;
}
