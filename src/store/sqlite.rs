//! The embedded default: one SQLite file in WAL mode, `synchronous = FULL`
//! so an acknowledged message survives a power cut.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::StoreError;
use super::sql::sql_store;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Cases as this server last wrote them (`RecentCases`).
    recent: super::recent::RecentCases,
    /// SQLite has one writer at a time; waiting here is cheaper and fairer
    /// than spinning on SQLITE_BUSY.
    writer: Mutex<()>,
}

impl SqliteStore {
    /// The connection pool, with this store's settings (for benchmarks
    /// that measure the database's own ceiling).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            // The database holds personal data: a directory we create is
            // readable by the service's user only.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir)?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        Ok(Self {
            pool,
            recent: Default::default(),
            writer: Mutex::new(()),
        })
    }

    async fn begin_write(
        &self,
    ) -> Result<(MutexGuard<'_, ()>, Transaction<'static, sqlx::Sqlite>), sqlx::Error> {
        let guard = self.writer.lock().await;
        // IMMEDIATE takes the write lock up front, so a reader never has to
        // upgrade mid-transaction (another process may hold the file too).
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok((guard, tx))
    }

    /// SQLite has no per-transaction planning settings to change, and
    /// the write lock covers every case and is the feed's turn.
    async fn begin_publish(
        &self,
        _cases: &[&crate::domain::CaseKey],
    ) -> Result<(MutexGuard<'_, ()>, Transaction<'static, sqlx::Sqlite>), sqlx::Error> {
        self.begin_write().await
    }

    /// Acknowledgements write: SQLite's one writer at a time.
    async fn begin_acknowledge(
        &self,
        _recipient: &crate::domain::RegionCode,
    ) -> Result<(MutexGuard<'_, ()>, Transaction<'static, sqlx::Sqlite>), sqlx::Error> {
        self.begin_write().await
    }

    /// Folding tallies writes: SQLite's one writer at a time.
    async fn begin_fold(
        &self,
    ) -> Result<(MutexGuard<'_, ()>, Transaction<'static, sqlx::Sqlite>), sqlx::Error> {
        self.begin_write().await
    }

    /// Publishers share the one pool (they write one at a time anyway).
    fn publishing_pool(&self) -> Option<&SqlitePool> {
        None
    }

    /// A read transaction keeps its snapshot in WAL mode.
    const BEGIN_SNAPSHOT: &str = "BEGIN";

    /// The whole transaction is the feed's turn already.
    async fn take_feed_turn(
        _tx: &mut Transaction<'static, sqlx::Sqlite>,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// One writer at a time: nobody holds another's rows.
    const LOCK_SKIPPING: &str = "";

    /// Held already (above).
    const IN_FEED_TURN: &str = "true";

    /// In process, a statement costs no round trip.
    const WRITES_TOGETHER: bool = false;

    /// New cases get their ids as they are inserted (`NEXT_CASE_ID`): a
    /// statement costs no round trip here.
    const NEXT_CASE_ID: Option<&str> = None;

    /// One writer at a time, whatever we do.
    const WRITERS: usize = 1;

    /// SQLite reuses a row's space as it rewrites it: counting leaves
    /// nothing to clear.
    const AFTER_TALLIES_BUILT: Option<&str> = None;

    /// Without statistics SQLite's planner takes every table to be large,
    /// so its plans here look rows up by index however young the database.
    const GROWN_TABLES: Option<&str> = None;
}

sql_store!(SqliteStore, sqlx::Sqlite);
