//! The database side of `twoplace bench`: obligations generated straight
//! into the schema (fast, in SQL), the PostgreSQL plans of the backlog's
//! statements, and the storage ceilings written straight through sqlx.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use tokio::sync::Mutex;

use twoplace::domain::region::counties_within;
use twoplace::store::{PgStore, PushRows, Rows, SqliteStore};

/// Rows generated per statement, so progress can be shown.
const CHUNK: u64 = 1_000_000;

/// A row of the ceiling: sender, message id, envelope, body.
pub type CeilingRow = (String, String, Vec<u8>, String);

/// The body of the generator, after the series `s(g)` is defined: cases
/// one per five obligations; each obligation owed by the case's origin (in
/// province 34) or its destination (on the east coast), so the province is
/// on one side of every obligation. 10 % open, 5 % cancelled, 15 % late,
/// the rest on time; open ones past due are flagged, as if the sweeper had
/// kept up. Times spread over the two years before $2.
fn obligations_sql(series: &str) -> String {
    format!(
        "{series} \
         INSERT INTO obligations (case_id, key, kind, debtor, creditor, state, opened_us, due_us, \
         escalates_us, closed_us, closed_by, detail, reminded_overdue_us, reminded_escalated_us) \
         SELECT c, 'B' || g, kind, debtor, creditor, state, opened, due, esc, \
         CASE state WHEN 'OPEN' THEN NULL \
           WHEN 'FULFILLED_LATE' THEN due + (g * 31 % 30 + 1) * 86400000000 \
           WHEN 'CANCELLED' THEN opened + 86400000000 \
           ELSE opened + (due - opened) * (g * 7919 % 100) / 100 END, \
         CASE state WHEN 'OPEN' THEN NULL ELSE 'bench' END, '', \
         CASE WHEN state = 'OPEN' AND due < $2 THEN due END, \
         CASE WHEN state = 'OPEN' AND esc < $2 THEN esc END \
         FROM (SELECT g, c, opened, due, opened + 2 * (due - opened) AS esc, \
           CASE WHEN g % 2 = 0 THEN o.code ELSE i.code END AS debtor, \
           CASE WHEN g % 2 = 0 THEN i.code ELSE o.code END AS creditor, \
           CASE g % 10 WHEN 0 THEN 'RECEIPT' WHEN 1 THEN 'RECEIPT' WHEN 2 THEN 'RECEIPT' \
             WHEN 3 THEN 'RECEIPT' WHEN 4 THEN 'PERIODIC_FEEDBACK' WHEN 5 THEN 'PERIODIC_FEEDBACK' \
             WHEN 6 THEN 'CONFIRM_REGISTRATION' WHEN 7 THEN 'CONFIRM_REGISTRATION' \
             WHEN 8 THEN 'ANSWER_REQUEST' ELSE 'VERIFY_CERTIFICATE' END AS kind, \
           CASE WHEN g / 10 % 20 < 2 THEN 'OPEN' WHEN g / 10 % 20 = 2 THEN 'CANCELLED' \
             WHEN g / 10 % 20 < 6 THEN 'FULFILLED_LATE' ELSE 'FULFILLED_ON_TIME' END AS state \
           FROM (SELECT g, 1 + g % $3 AS c, \
             $2 - 63072000000000 + g * (63072000000000 / $4) AS opened, \
             $2 - 63072000000000 + g * (63072000000000 / $4) + (15 + g % 46) * 86400000000 AS due \
             FROM s) t \
           JOIN bench_offices i ON i.role = 'in' AND i.i = t.c % $5 \
           JOIN bench_offices o ON o.role = 'out' AND o.i = t.c % $6) x"
    )
}

/// The generator of cases, after the series `s(g)` is defined: `body`
/// makes a resident ID's first 17 digits from the origin `i.code` and `g`
/// (a real birth date: the stored IDs are read back as `ResidentId`s, by
/// the sweeper among others), and the check character is computed here.
fn cases_sql(series: &str, body: &str) -> String {
    use twoplace::domain::resident_id::{CHECK_CHARS, WEIGHTS};
    let check_chars = String::from_utf8_lossy(CHECK_CHARS);
    let sum = WEIGHTS
        .iter()
        .enumerate()
        .map(|(k, w)| format!("CAST(substr(b, {}, 1) AS INTEGER) * {w}", k + 1))
        .collect::<Vec<_>>()
        .join(" + ");
    format!(
        "{series} INSERT INTO cases (resident_id, origin, destination, status, state, \
         created_us, updated_us) \
         SELECT b || substr('{check_chars}', ({sum}) % 11 + 1, 1), origin, destination, \
         'ACTIVE', '{{}}', 0, 0 FROM \
         (SELECT {body} AS b, i.code AS origin, o.code AS destination FROM s \
         JOIN bench_offices i ON i.role = 'in' AND i.i = s.g % $3 \
         JOIN bench_offices o ON o.role = 'out' AND o.i = s.g % $4) AS t"
    )
}

enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The numbers `lo..=hi` as `s(g)`.
    fn series(&self, lo: &str, hi: &str) -> String {
        match self {
            Backend::Sqlite => format!(
                "WITH RECURSIVE s(g) AS (SELECT CAST({lo} AS INTEGER) UNION ALL \
                 SELECT g + 1 FROM s WHERE g < CAST({hi} AS INTEGER))"
            ),
            Backend::Postgres => {
                format!("WITH s(g) AS (SELECT generate_series({lo}::bigint, {hi}::bigint))")
            }
        }
    }
}

fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

const OFFICES_TABLE: &str = "CREATE TABLE IF NOT EXISTS bench_offices (role TEXT NOT NULL, i INTEGER NOT NULL, code TEXT NOT NULL)";

/// Loads `n` obligations and n/5 cases into the fresh database at `url`,
/// and leaves the tallies to be counted when the server starts.
pub async fn load(url: &str, n: u64) -> Result<()> {
    let inside = counties_within("34");
    let outside: Vec<&str> = ["31", "32", "33", "44"]
        .iter()
        .flat_map(|p| counties_within(p))
        .collect();
    let cases = (n / 5).max(1) as i64;
    let now = now_us();
    macro_rules! fill {
        ($pool:expr, $series:expr, $id:expr) => {{
            let pool = $pool;
            sqlx::query(OFFICES_TABLE).execute(pool).await?;
            for (role, codes) in [("in", &inside), ("out", &outside)] {
                for (i, code) in codes.iter().enumerate() {
                    sqlx::query("INSERT INTO bench_offices (role, i, code) VALUES ($1, $2, $3)")
                        .bind(role)
                        .bind(i as i64)
                        .bind(*code)
                        .execute(pool)
                        .await?;
                }
            }
            let mut start = 1i64;
            while start <= cases {
                let end = (start + CHUNK as i64 - 1).min(cases);
                sqlx::query(sqlx::AssertSqlSafe(cases_sql(
                    &$series.series("$1", "$2"),
                    $id,
                )))
                .bind(start)
                .bind(end)
                .bind(inside.len() as i64)
                .bind(outside.len() as i64)
                .execute(pool)
                .await
                .context("generating cases")?;
                start = end + 1;
            }
            let started = Instant::now();
            let mut start = 1i64;
            while start <= n as i64 {
                let end = (start + CHUNK as i64 - 1).min(n as i64);
                // $1/$7: the range of this chunk.
                sqlx::query(sqlx::AssertSqlSafe(obligations_sql(
                    &$series.series("$1", "$7"),
                )))
                .bind(start)
                .bind(now)
                .bind(cases)
                .bind(n as i64)
                .bind(inside.len() as i64)
                .bind(outside.len() as i64)
                .bind(end)
                .execute(pool)
                .await
                .context("generating obligations")?;
                eprintln!(
                    "    {end} obligations ({:.0}/s)",
                    end as f64 / started.elapsed().as_secs_f64()
                );
                start = end + 1;
            }
            sqlx::query("DROP TABLE bench_offices")
                .execute(pool)
                .await?;
            // Counted afresh by the server at start, like a database from
            // before the tallies.
            sqlx::query("DELETE FROM tallies_built")
                .execute(pool)
                .await?;
            sqlx::query("DELETE FROM tallies_now").execute(pool).await?;
            sqlx::query("DELETE FROM tallies_daily")
                .execute(pool)
                .await?;
            sqlx::query("ANALYZE").execute(pool).await?;
            // What the service reads back must parse: IDs it took for
            // corrupt once made the sweeper fail at every pass at scale.
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT resident_id FROM cases ORDER BY id LIMIT 1000")
                    .fetch_all(pool)
                    .await?;
            for id in ids {
                let id = twoplace::domain::ResidentId::parse(&id)
                    .map_err(|e| anyhow::anyhow!("a generated resident ID: {e}"))?;
                anyhow::ensure!(
                    id.check_digit_ok(),
                    "a generated resident ID's check character: {}",
                    id.masked()
                );
            }
        }};
    }
    if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        fill!(
            store.pool(),
            Backend::Sqlite,
            // Born 1960-01-01 plus a day per thousand cases, then the
            // case's place in its thousand.
            "i.code || strftime('%Y%m%d', '1960-01-01', '+' || (s.g / 1000) || ' days') \
             || printf('%03d', s.g % 1000)"
        );
    } else {
        let store = PgStore::connect(url).await?;
        fill!(
            store.pool(),
            Backend::Postgres,
            "i.code || to_char(DATE '1960-01-01' + CAST(s.g / 1000 AS INTEGER), 'YYYYMMDD') \
             || lpad(CAST(s.g % 1000 AS TEXT), 3, '0')"
        );
    }
    Ok(())
}

/// The PostgreSQL plans (EXPLAIN ANALYZE) of the backlog's and the trend's
/// statements for province 34 and of ListOverdue's for county 341502.
pub async fn plans(url: &str) -> Result<String> {
    let pool = sqlx::PgPool::connect(url).await?;
    let now = now_us();
    let today = twoplace::domain::tally::shanghai_day(now);
    let mut out = String::new();
    let statements: Vec<(&str, String, Vec<String>)> = vec![
        (
            "tallies now",
            twoplace::store::TALLIES_NOW_SQL.to_string(),
            vec!["'34'".into(), "'34:'".into(), "4".into()],
        ),
        (
            "tallies of the window's days",
            twoplace::store::TALLIES_DAILY_SQL.to_string(),
            vec![
                "'34'".into(),
                (today - 89).to_string(),
                today.to_string(),
                "'34'".into(),
                "'34:'".into(),
            ],
        ),
        (
            "Trend 34: the province's own days",
            twoplace::store::REGION_DAYS_SQL.to_string(),
            vec![
                "''".into(),
                (today - 29).to_string(),
                "'34'".into(),
                "'debtor'".into(),
            ],
        ),
        (
            "not yet flagged overdue (debtor)",
            twoplace::store::unflagged_sql("debtor", false),
            vec!["4".into(), now.to_string(), "'34'".into(), "'34:'".into()],
        ),
        (
            "ListOverdue 341502, first page",
            twoplace::store::overdue_in_region_sql(6),
            vec![
                "'341502'".into(),
                "'341502:'".into(),
                now.to_string(),
                i64::MIN.to_string(),
                i64::MIN.to_string(),
                "51".into(),
            ],
        ),
    ];
    for (name, sql, binds) in statements {
        // Literal values, so the plan is the one for these values.
        let mut text = sql;
        for (i, v) in binds.iter().enumerate().rev() {
            text = text.replace(&format!("${}", i + 1), v);
        }
        let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (ANALYZE, BUFFERS) {text}"
        )))
        .fetch_all(&pool)
        .await?;
        out.push_str(&format!("-- {name}\n{}\n\n", lines.join("\n")));
    }
    pool.close().await;
    Ok(out)
}

/// How a ceiling writes each transaction's messages and deliveries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Statements {
    /// A statement per row: the plain sqlx loop.
    PerRow,
    /// One multi-row statement per table, as the service writes (`Rows`:
    /// arrays on PostgreSQL, `VALUES` on SQLite) — the fastest way we know.
    MultiRow,
}

/// Opens the connections `clients` writers will use before the clock
/// starts, as the server's are open by the time it is measured.
async fn connect_all<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, clients: usize) -> Result<()> {
    let mut held = Vec::new();
    for _ in 0..clients.min(pool.options().get_max_connections() as usize) {
        held.push(pool.acquire().await?);
    }
    Ok(())
}

/// Writes the queued chunks from `clients` tasks, one transaction per
/// chunk: messages per second and the machine's CPU a message with how
/// busy it was (`MachineCpu`). On SQLite the writers take turns in
/// process, as the service's do, instead of sleeping in SQLite's busy
/// handler.
pub(super) async fn ceiling_writes(
    url: &str,
    queue: Arc<Mutex<Vec<Vec<CeilingRow>>>>,
    clients: usize,
    n: usize,
    statements: Statements,
) -> Result<super::bench::Stretch> {
    macro_rules! run {
        ($db:ty, $pool:expr, $turn:expr, $p:ident => $begin:expr) => {{
            let pool = $pool.clone();
            connect_all(&pool, clients).await?;
            let turn = Arc::new(Mutex::new(()));
            let case: i64 = sqlx::query_scalar(
                "INSERT INTO cases (resident_id, origin, status, state, created_us, updated_us) \
                 VALUES ('11010519491231002X', '341502', 'ACTIVE', '{}', 0, 0) \
                 ON CONFLICT (resident_id, origin) DO UPDATE SET updated_us = 0 RETURNING id",
            )
            .fetch_one(&pool)
            .await?;
            let (started, cpu) = (Instant::now(), super::bench::MachineCpu::now());
            let mut tasks = Vec::new();
            for _ in 0..clients.max(1) {
                let (pool, queue, turn) = (pool.clone(), queue.clone(), turn.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let Some(chunk) = queue.lock().await.pop() else {
                            break;
                        };
                        let _turn = if $turn { Some(turn.lock().await) } else { None };
                        let $p = &pool;
                        let mut tx = $begin.await?;
                        if statements == Statements::PerRow {
                            for (sender, id, envelope, body) in &chunk {
                                let row: Option<i64> = sqlx::query_scalar(
                                    "INSERT INTO messages (sender, message_id, content_hash, \
                                     kind, case_id, recipient, envelope, body, standing, \
                                     accepted_us) \
                                     VALUES ($1, $2, $3, 'BENCH', $4, $1, $3, $5, 'ACTIVE', 0) \
                                     ON CONFLICT (sender, message_id) DO NOTHING RETURNING id",
                                )
                                .bind(sender)
                                .bind(id)
                                .bind(envelope)
                                .bind(case)
                                .bind(body)
                                .fetch_optional(&mut *tx)
                                .await?;
                                if let Some(message) = row {
                                    sqlx::query(
                                        "INSERT INTO deliveries (recipient, message) VALUES ($1, $2)",
                                    )
                                    .bind(sender)
                                    .bind(message)
                                    .execute(&mut *tx)
                                    .await?;
                                }
                            }
                            tx.commit().await?;
                            continue;
                        }
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO messages (sender, message_id, content_hash, kind, \
                             case_id, recipient, envelope, body, standing, accepted_us) \
                             SELECT column1, column2, column3, 'BENCH', ",
                        );
                        q.push_bind(case);
                        q.push(", column1, column3, column4, 'ACTIVE', 0 FROM ");
                        <$db as PushRows>::push_rows(
                            &mut q,
                            Rows::new(chunk.len())
                                .text(chunk.iter().map(|(sender, ..)| sender.as_str()))
                                .text(chunk.iter().map(|(_, id, ..)| id.as_str()))
                                .bytes(chunk.iter().map(|(_, _, envelope, _)| envelope.as_slice()))
                                .text(chunk.iter().map(|(.., body)| body.as_str())),
                        );
                        q.push(
                            " WHERE true ON CONFLICT (sender, message_id) DO NOTHING \
                             RETURNING id, sender",
                        );
                        let stored: Vec<(i64, String)> =
                            q.build_query_as().fetch_all(&mut *tx).await?;
                        if !stored.is_empty() {
                            let mut q = sqlx::QueryBuilder::<$db>::new(
                                "INSERT INTO deliveries (recipient, message) SELECT * FROM ",
                            );
                            <$db as PushRows>::push_rows(
                                &mut q,
                                Rows::new(stored.len())
                                    .text(stored.iter().map(|(_, sender)| sender.as_str()))
                                    .int(stored.iter().map(|(id, _)| *id)),
                            );
                            q.build().execute(&mut *tx).await?;
                        }
                        tx.commit().await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            cpu.stretch(started, n)
        }};
    }
    Ok(if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        run!(sqlx::Sqlite, store.pool(), true, p => p.begin_with("BEGIN IMMEDIATE"))
    } else {
        // PostgreSQL's writers go in parallel: its own group commit shares
        // their WAL flushes. Cached plans, as the service publishes with.
        let store = PgStore::connect(url).await?;
        run!(sqlx::Postgres, store.pool(), false,
             p => p.begin_with("BEGIN; SET LOCAL plan_cache_mode = auto"))
    })
}

/// The tables ingest writes, parents before children.
const STORED_TABLES: [&str; 6] = [
    "cases",
    "messages",
    "deliveries",
    "obligations",
    "tallies_now",
    "tallies_daily",
];

/// One column of a table as read back, every value nullable.
enum StoredColumn {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

/// One table as ingest left it.
struct StoredTable {
    name: &'static str,
    columns: Vec<String>,
    values: Vec<StoredColumn>,
    len: usize,
}

impl StoredTable {
    /// Rows `range` of the table, as [`Rows`] in column order.
    fn rows(&self, range: std::ops::Range<usize>) -> Rows<'_> {
        let mut rows = Rows::new(range.len());
        for column in &self.values {
            rows = match column {
                StoredColumn::Int(v) => rows.opt_int(v[range.clone()].iter().copied()),
                StoredColumn::Text(v) => rows.opt_text(v[range.clone()].iter().cloned()),
                StoredColumn::Bytes(v) => rows.opt_bytes(v[range.clone()].iter().cloned()),
            };
        }
        rows
    }
}

/// Every row ingest stored — cases, messages, deliveries, obligations and
/// tallies, in their final state — read back from its database, for the
/// ceiling that writes the same rows again.
pub struct StoredRows {
    tables: Vec<StoredTable>,
    messages: usize,
}

impl StoredRows {
    pub async fn read(url: &str) -> Result<StoredRows> {
        macro_rules! read {
            ($pool:expr, $columns_sql:expr) => {{
                let pool = $pool;
                let mut tables = Vec::new();
                for name in STORED_TABLES {
                    let described: Vec<(String, String)> = sqlx::query_as($columns_sql)
                        .bind(name)
                        .fetch_all(&pool)
                        .await?;
                    let columns: Vec<String> = described.iter().map(|(c, _)| c.clone()).collect();
                    let sql = format!("SELECT {} FROM {name} ORDER BY 1", columns.join(", "));
                    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&pool)
                        .await?;
                    let mut values = Vec::new();
                    for (i, (column, kind)) in described.iter().enumerate() {
                        use sqlx::Row as _;
                        let kind = kind.to_ascii_lowercase();
                        values.push(match kind.as_str() {
                            "bigint" | "integer" => StoredColumn::Int(
                                rows.iter()
                                    .map(|r| r.try_get(i))
                                    .collect::<Result<_, _>>()?,
                            ),
                            "text" => StoredColumn::Text(
                                rows.iter()
                                    .map(|r| r.try_get(i))
                                    .collect::<Result<_, _>>()?,
                            ),
                            "bytea" | "blob" => StoredColumn::Bytes(
                                rows.iter()
                                    .map(|r| r.try_get(i))
                                    .collect::<Result<_, _>>()?,
                            ),
                            other => anyhow::bail!("{name}.{column}: no ceiling for type {other}"),
                        });
                    }
                    tables.push(StoredTable {
                        name,
                        columns,
                        values,
                        len: rows.len(),
                    });
                }
                pool.close().await;
                tables
            }};
        }
        let tables = if url.starts_with("sqlite:") {
            read!(
                sqlx::SqlitePool::connect(url).await?,
                "SELECT name, type FROM pragma_table_info(?) ORDER BY cid"
            )
        } else {
            read!(
                sqlx::PgPool::connect(url).await?,
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position"
            )
        };
        let messages = tables
            .iter()
            .find(|t| t.name == "messages")
            .map_or(0, |t| t.len);
        Ok(StoredRows { tables, messages })
    }

    /// Rows in all the tables.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|t| t.len).sum()
    }
}

/// The storage ceiling of batched ingest: the rows ingest stored, written
/// again straight through sqlx into a fresh database of the same schema —
/// one transaction per `batch` messages' share of every table, one
/// multi-row statement per table and transaction, from `clients` tasks
/// (taking turns in process on SQLite). Foreign keys are not checked:
/// parallel transactions cannot all find their parents committed, and a
/// ceiling may only err high. Messages per second, and the machine's CPU
/// a message with how busy it was (`MachineCpu`).
pub(super) async fn ceiling_stored_rows(
    url: &str,
    stored: Arc<StoredRows>,
    batch: usize,
    clients: usize,
) -> Result<super::bench::Stretch> {
    let transactions = stored.messages.div_ceil(batch.max(1)).max(1);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    macro_rules! run {
        ($db:ty, $pool:expr, $turn:expr, $begin:expr, $overriding:expr) => {{
            let pool = $pool.clone();
            connect_all(&pool, clients).await?;
            let turn = Arc::new(Mutex::new(()));
            let (started, cpu) = (Instant::now(), super::bench::MachineCpu::now());
            let mut tasks = Vec::new();
            for _ in 0..clients.max(1) {
                let (pool, turn, next, stored) =
                    (pool.clone(), turn.clone(), next.clone(), stored.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= transactions {
                            break;
                        }
                        let _turn = if $turn { Some(turn.lock().await) } else { None };
                        let mut tx = pool.begin_with($begin).await?;
                        for table in &stored.tables {
                            let share = |k: usize| k * table.len / transactions;
                            let (lo, hi) = (share(k), share(k + 1));
                            let per = <$db as PushRows>::rows_per_statement(table.columns.len());
                            let mut at = lo;
                            while at < hi {
                                let end = (at + per).min(hi);
                                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                                    "INSERT INTO {} ({}) {} SELECT * FROM ",
                                    table.name,
                                    table.columns.join(", "),
                                    $overriding
                                ));
                                <$db as PushRows>::push_rows(&mut q, table.rows(at..end));
                                q.build().execute(&mut *tx).await?;
                                at = end;
                            }
                        }
                        tx.commit().await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            cpu.stretch(started, stored.messages)
        }};
    }
    Ok(if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url).await?;
        let pool = store.pool().clone();
        // The pragma holds per connection: set it on every one the writers use.
        let mut held = Vec::new();
        for _ in 0..clients.clamp(1, 8) {
            let mut conn = pool.acquire().await?;
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await?;
            held.push(conn);
        }
        drop(held);
        run!(sqlx::Sqlite, pool, true, "BEGIN IMMEDIATE", "")
    } else {
        let store = PgStore::connect(url).await?;
        run!(
            sqlx::Postgres,
            store.pool(),
            false,
            "BEGIN; SET LOCAL plan_cache_mode = auto; \
             SET LOCAL session_replication_role = replica",
            "OVERRIDING SYSTEM VALUE"
        )
    })
}
