//! PostgreSQL, for production. Several servers may share one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Transaction};

use super::StoreError;
use super::sql::sql_store;

pub struct PgStore {
    pool: PgPool,
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
        let options = PgConnectOptions::from_str(url)?.options([
            ("plan_cache_mode", "force_custom_plan"),
            ("max_parallel_workers_per_gather", "0"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<((), Transaction<'static, sqlx::Postgres>), sqlx::Error> {
        // Sequence numbers are handed out in commit order only if writers
        // take turns; the lock is released at commit or rollback. One round
        // trip for both statements.
        Ok(((), self.pool.begin_with(BEGIN_WRITE).await?))
    }

    /// A write turn for publishing. Its statements and the foreign-key
    /// checks of every row it inserts are the same few plans each time:
    /// replanning them (the pool's `force_custom_plan`, meant for the
    /// sweeper's and the dashboards' reads) was a fifth of PostgreSQL's time
    /// during ingest.
    async fn begin_publish(
        &self,
    ) -> Result<((), Transaction<'static, sqlx::Postgres>), sqlx::Error> {
        Ok(((), self.pool.begin_with(BEGIN_PUBLISH).await?))
    }
}

// 8392298959273550693 = 0x7477_6f70_6c61_6365, "twoplace": arbitrary but
// fixed, the advisory lock that orders writing transactions across every
// server on the database.
const BEGIN_WRITE: &str = "BEGIN; SELECT pg_advisory_xact_lock(8392298959273550693)";
const BEGIN_PUBLISH: &str = "BEGIN; SET LOCAL plan_cache_mode = auto; \
                             SELECT pg_advisory_xact_lock(8392298959273550693)";

sql_store!(PgStore, sqlx::Postgres);
