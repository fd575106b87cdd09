//! The PostgreSQL backend (`--features postgres`, `--db postgres://...`),
//! for several `articles` replicas on one database.
//!
//! One r2d2 pool of connections, each with its prepared statements. Every
//! write is one transaction that locks what it checks (`FOR UPDATE`), so the
//! checks made inside it (ownership, `If-Match`, an idempotency key) hold
//! across processes; every rule that must hold across replicas is a
//! constraint or a lock in the database, never a lock in this process.
//! Webhook deliveries are claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! Durability is PostgreSQL's: a write is acknowledged after its COMMIT
//! returns, with the server's `synchronous_commit` setting.

mod articles;
mod idempotency;
mod import;
mod migrate;
mod outbox;
mod users;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement};
use r2d2::Pool;

use super::{busy, Operations, StoreError, BUSY_TIMEOUT};

/// The readiness round trip: reads a table, not just the connection.
const PING: &str = "SELECT version FROM articles_schema";

/// The database: one pool of connections.
pub struct PgStore {
    pool: Pool<Manager>,
    /// Write transactions committed (each write is its own).
    writes: AtomicU64,
}

impl PgStore {
    /// Connects to the database at `url`, migrates it, and opens a pool of
    /// `connections` connections.
    pub fn open(url: &str, connections: u32) -> Result<PgStore, StoreError> {
        let manager = Manager::new(url)?;
        migrate::migrate(&mut manager.connect_client()?)?;
        let pool = Pool::builder()
            .max_size(connections.max(1))
            .min_idle(Some(1))
            .max_lifetime(None)
            .connection_timeout(BUSY_TIMEOUT)
            .test_on_check_out(false)
            .build(manager)?;
        Ok(PgStore {
            pool,
            writes: AtomicU64::new(0),
        })
    }

    /// Applies pending migrations without opening a pool; returns the
    /// schema version before and after.
    pub fn migrate(url: &str) -> Result<(u32, u32), StoreError> {
        migrate::migrate(&mut Manager::new(url)?.connect_client()?)
    }

    fn conn(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` in one transaction and commits it.
    fn write<T>(
        &self,
        work: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = self.transaction(false, work)?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(result)
    }

    /// Runs `work` in one read-only transaction that sees one snapshot.
    fn read_snapshot<T>(
        &self,
        work: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(true, work)
    }

    /// Runs `work` in a transaction, read-write or a read-only snapshot,
    /// and commits it; an error from `work` rolls it back.
    fn transaction<T>(
        &self,
        snapshot: bool,
        work: impl FnOnce(&mut Db<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        let mut tx = match snapshot {
            true => client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?,
            false => client.transaction()?,
        };
        let result = work(&mut Db {
            client: &mut tx,
            statements,
        })?;
        tx.commit()?;
        Ok(result)
    }

    /// Runs `work` on a connection outside any transaction.
    fn read<T>(
        &self,
        work: impl FnOnce(&mut Db<'_, Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn()?;
        let PgConn { client, statements } = &mut *conn;
        work(&mut Db { client, statements })
    }
}

impl Operations for PgStore {
    fn ping(&self, limit: Duration) -> Result<(), StoreError> {
        let mut conn = self.pool.get_timeout(limit)?;
        conn.client.query_one(PING, &[])?;
        Ok(())
    }

    fn pool_states(&self) -> Vec<(&'static str, u32, u32)> {
        let state = self.pool.state();
        vec![(
            "postgres",
            state.connections - state.idle_connections,
            state.idle_connections,
        )]
    }

    fn write_counts(&self) -> (u64, u64) {
        let writes = self.writes.load(Ordering::Relaxed);
        (writes, writes)
    }

    /// Nothing to tidy: PostgreSQL owns its files.
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A client (a connection or a transaction on it) with the connection's
/// prepared statements: each statement is parsed once per connection.
pub(super) struct Db<'c, C> {
    client: &'c mut C,
    statements: &'c mut HashMap<String, Statement>,
}

impl<C: GenericClient> Db<'_, C> {
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_opt(&statement, params)?)
    }

    fn query_one(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.query_one(&statement, params)?)
    }

    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }
}

/// A pooled connection and its prepared statements.
pub struct PgConn {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// Opens connections for the pool.
pub struct Manager {
    config: Config,
}

impl Manager {
    fn new(url: &str) -> Result<Manager, StoreError> {
        let mut config = Config::from_str(url)
            // The message names the part that is wrong, never the password.
            .map_err(|err| StoreError::unavailable(format!("invalid PostgreSQL URL: {err}")))?;
        let timeout_ms = BUSY_TIMEOUT.as_millis();
        config
            .application_name("articles")
            .connect_timeout(BUSY_TIMEOUT)
            // Set at connection start-up, no round trip: a statement or a
            // lock wait longer than the busy timeout fails (503), and so does
            // a transaction left idle by a stuck client of the database.
            // Notices ("already exists, skipping") stay out of the log.
            .options(&format!(
                "-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms} \
                 -c idle_in_transaction_session_timeout=60000 -c client_min_messages=warning"
            ));
        Ok(Manager { config })
    }

    fn connect_client(&self) -> Result<Client, StoreError> {
        Ok(self.config.connect(NoTls)?)
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        conn.client.is_closed()
    }
}

impl From<postgres::Error> for StoreError {
    fn from(err: postgres::Error) -> StoreError {
        let Some(code) = err.code() else {
            // No SQLSTATE: the connection failed or closed, or a value did
            // not convert (a bug).
            let io =
                std::error::Error::source(&err).is_some_and(|source| source.is::<std::io::Error>());
            return match err.is_closed() || io {
                true => StoreError::Unavailable(Box::new(err)),
                false => StoreError::Internal(Box::new(err)),
            };
        };
        let code = code.clone();
        if code == SqlState::UNIQUE_VIOLATION {
            StoreError::Duplicate(Box::new(err))
        } else if [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(&code)
        {
            busy(err)
        } else if code == SqlState::DISK_FULL {
            StoreError::Full
        } else if code.code().starts_with("08")
            || code.code().starts_with("57P")
            || code.code().starts_with("53")
            || code.code().starts_with("28")
            || code == SqlState::INVALID_CATALOG_NAME
            || code == SqlState::READ_ONLY_SQL_TRANSACTION
        {
            // Connection trouble, the server shutting down or out of
            // resources, bad credentials, no such database, a read-only
            // standby.
            StoreError::Unavailable(Box::new(err))
        } else {
            StoreError::Internal(Box::new(err))
        }
    }
}
