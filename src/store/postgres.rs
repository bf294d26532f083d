//! PostgreSQL, for production. Several servers may share one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Transaction};

use super::StoreError;
use super::sql::sql_store;

/// Arbitrary but fixed: the advisory lock that orders publishing
/// transactions across every server on the database.
const PUBLISH_LOCK: i64 = 0x7477_6f70_6c61_6365; // "twoplace"

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
        let mut tx = self.pool.begin().await?;
        // Sequence numbers are handed out in commit order only if writers
        // take turns; the lock is released at commit or rollback.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PUBLISH_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(((), tx))
    }
}

sql_store!(PgStore, sqlx::Postgres);
