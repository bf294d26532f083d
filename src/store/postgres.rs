//! PostgreSQL, for production. Several servers may share one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Transaction};

use super::StoreError;
use super::sql::sql_store;

// 0x7477_6f70_6c61_6365 is "twoplace": arbitrary but fixed advisory lock
// keys, shared by every server on the database. The first (the writers'
// lock) was, before publishers ran side by side, the one lock every writing
// transaction held exclusively; an older server still excludes publishers
// with it.
macro_rules! feed_turn {
    () => {
        "SELECT pg_advisory_xact_lock(8392298959273550694)"
    };
}
/// The third key is the tally folder's: one fold at a time, and none
/// while a writer counts or checks the tallies.
const BEGIN_FOLD: &str = "BEGIN; SELECT pg_advisory_xact_lock(8392298959273550695)";
const BEGIN_WRITE: &str = concat!(
    "BEGIN; SELECT pg_advisory_xact_lock(8392298959273550693); ",
    feed_turn!(),
    "; SELECT pg_advisory_xact_lock(8392298959273550695)"
);
const BEGIN_PUBLISH: &str = "BEGIN; SELECT pg_advisory_xact_lock_shared(8392298959273550693)";
const FEED_TURN: &str = feed_turn!();

/// The first key of acknowledgements' locks ("tpoa"); cases' are 1953523831.
const ACKNOWLEDGING: i32 = 0x7470_6f61;

pub struct PgStore {
    /// Reads, acknowledgements, and the writers that exclude publishers.
    pool: PgPool,
    /// Publishes: each group in flight (`WRITERS`), split into at most
    /// `WRITERS` transactions (`store::intake`).
    publishing: PgPool,
    /// Cases as this server last wrote them (`RecentCases`).
    recent: super::recent::RecentCases,
}

impl PgStore {
    /// The connection pool, with this store's settings (for benchmarks
    /// that measure the database's own ceiling).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        // Short statements only: a generic plan of a prepared statement
        // cannot know that "not yet flagged and past due" is a handful of
        // rows, and parallel workers cost more to start than such a query
        // takes (BENCHMARKS.md: 12–22 ms each before, about 1 ms after).
        let options =
            PgConnectOptions::from_str(url)?.options([("max_parallel_workers_per_gather", "0")]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(
                options
                    .clone()
                    .options([("plan_cache_mode", "force_custom_plan")]),
            )
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        // Publishes have connections of their own, so they never wait
        // behind live feeds' and dashboards' reads for one (BENCHMARKS.md,
        // thirteenth round: all sixteen taken by subscribers). Their
        // statements are the same few plans each time: replanning them was
        // a fifth of PostgreSQL's time during ingest.
        let publishing = PgPoolOptions::new()
            .max_connections((Self::WRITERS * Self::WRITERS) as u32)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.options([("plan_cache_mode", "auto")]))
            .await?;
        Ok(Self {
            pool,
            publishing,
            recent: Default::default(),
        })
    }

    /// A turn that excludes every other writer (counting and checking the
    /// tallies): publishers, the sweeper and acknowledgements hold the
    /// writers' lock shared, this holds it exclusively, then the feed's
    /// turn and the tally folder's lock. One round trip.
    async fn begin_write(&self) -> Result<((), Transaction<'static, sqlx::Postgres>), sqlx::Error> {
        Ok(((), self.pool.begin_with(BEGIN_WRITE).await?))
    }

    /// A transaction that adds recorded changes to the stored tallies:
    /// beside publishers, one at a time.
    async fn begin_fold(&self) -> Result<((), Transaction<'static, sqlx::Postgres>), sqlx::Error> {
        Ok(((), self.pool.begin_with(BEGIN_FOLD).await?))
    }

    /// A publishing transaction, which runs beside other publishers,
    /// holding the locks of the cases it may write: by a hash of their keys,
    /// taken in one sorted pass, so publishers sharing a case (even one
    /// neither has created yet) wait for each other and never deadlock.
    /// One lock per case, held to commit, in PostgreSQL's shared lock table
    /// (`max_locks_per_transaction` × connections entries; a group is at
    /// most a few thousand cases), on a connection of the publishers' own
    /// (`publishing`). One round trip for all of it; the feed's turn comes
    /// later (`IN_FEED_TURN`).
    async fn begin_publish(
        &self,
        cases: &[&crate::domain::CaseKey],
    ) -> Result<((), Transaction<'static, sqlx::Postgres>), sqlx::Error> {
        let mut locks: Vec<i32> = cases.iter().map(|k| case_lock(k)).collect();
        locks.sort_unstable();
        locks.dedup();
        // Numbers only, so written into the text: the simple protocol that
        // BEGIN goes by has no parameters. The aggregate takes the locks in
        // the array's order.
        let locks: Vec<String> = locks.iter().map(i32::to_string).collect();
        let begin = format!(
            "{BEGIN_PUBLISH}; SELECT count(pg_advisory_xact_lock(1953523831, k)) \
             FROM unnest('{{{}}}'::int4[]) AS k",
            locks.join(",")
        );
        Ok((
            (),
            self.publishing
                .begin_with(sqlx::AssertSqlSafe(begin))
                .await?,
        ))
    }

    /// An acknowledgement's transaction: beside publishers and sweepers
    /// (it closes RECEIPTs and marks deliveries, which neither loads nor
    /// changes), one at a time per recipient, whose rows are all it
    /// touches. The office code (six digits) is its lock's key.
    async fn begin_acknowledge(
        &self,
        recipient: &crate::domain::RegionCode,
    ) -> Result<((), Transaction<'static, sqlx::Postgres>), sqlx::Error> {
        let office: u32 = recipient.as_str().parse().unwrap_or_default();
        let begin =
            format!("{BEGIN_PUBLISH}; SELECT pg_advisory_xact_lock({ACKNOWLEDGING}, {office})");
        Ok(((), self.pool.begin_with(sqlx::AssertSqlSafe(begin)).await?))
    }

    /// The publishers' own connections (beside `pool`).
    fn publishing_pool(&self) -> Option<&PgPool> {
        Some(&self.publishing)
    }

    /// Waits for the feed's turn, held to commit: deliveries get their
    /// sequence numbers in commit order, and the tallies (read, merged and
    /// written) are written by one transaction at a time.
    async fn take_feed_turn(
        tx: &mut Transaction<'static, sqlx::Postgres>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(FEED_TURN).execute(&mut **tx).await?;
        Ok(())
    }

    /// A sweeper's flagging skips the obligations an acknowledgement is
    /// closing: neither ever waits for the other's rows, so the two never
    /// deadlock (`send_reminders`).
    const LOCK_SKIPPING: &str = " FOR UPDATE SKIP LOCKED";

    /// Waits for the feed's turn, as a statement's WHERE: PostgreSQL
    /// evaluates it once, before the statement's first row.
    const IN_FEED_TURN: &str = concat!("(", feed_turn!(), ") IS NOT NULL");

    /// Reads that must agree with each other (the stored tallies and the
    /// changes not yet folded into them) see one snapshot.
    const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

    /// Statements that return nothing go as WITH items of the next one,
    /// and deliveries with their messages: a round trip each was most of a
    /// group of single publishes' time.
    const WRITES_TOGETHER: bool = true;

    /// A new case's id, taken when its publish reads the cases: its row is
    /// then inserted as one of the writes (`WRITES_TOGETHER`) rather than
    /// by a statement of its own that returns the id. Most single
    /// publishes create a case.
    const NEXT_CASE_ID: Option<&str> = Some("nextval(pg_get_serial_sequence('cases', 'id'))");

    /// Groups of publishes written at once, and transactions a large group
    /// is split into, by case: on two cores, one loads, reconciles and
    /// writes its cases while the other has the feed's turn (BENCHMARKS.md,
    /// fifth and sixth rounds; four was slower).
    const WRITERS: usize = 2;

    /// Counting the tallies adds to the same daily rows every 200,000
    /// obligations, and each addition leaves a dead version of the row:
    /// at 10 M obligations, 4.1 M dead beside 595 k live, and a province's
    /// 90 days read 15,406 buffers (8–26 ms) until autovacuum came; after
    /// this, 410 buffers and 2.5 ms (BENCHMARKS.md, nineteenth round).
    const AFTER_TALLIES_BUILT: Option<&str> = Some("VACUUM (ANALYZE) tallies_daily, tallies_now");

    /// The tables publishes write, where they have changed by more rows
    /// than they held when last analyzed (at least a thousand). A
    /// publishing connection keeps a generic plan for the rest of its life
    /// unless a table it reads is analyzed, and one made while the table
    /// was small scans it whole: on a young database, before autovacuum
    /// first comes by (a minute), every group's write statement read every
    /// case and obligation (12.6 M obligations read for 7,014 single
    /// publishes; BENCHMARKS.md, twentieth round). Past that, autovacuum
    /// analyzes a table long before it doubles. Names come quoted.
    const GROWN_TABLES: Option<&str> = Some(
        "SELECT quote_ident(s.relname) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.schemaname = current_schema() \
         AND s.relname IN ('cases', 'messages', 'deliveries', 'obligations') \
         AND s.n_mod_since_analyze > GREATEST(1000, c.reltuples)",
    );
}

/// A case's lock: FNV-1a of its key, the same in every server and version
/// (two cases sharing a lock only wait for each other).
fn case_lock(key: &crate::domain::CaseKey) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    let bytes = key
        .resident
        .as_str()
        .bytes()
        .chain([0])
        .chain(key.origin.as_str().bytes());
    for b in bytes {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    hash as i32
}

sql_store!(PgStore, sqlx::Postgres);
