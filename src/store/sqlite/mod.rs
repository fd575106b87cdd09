//! The SQLite backend, the embedded default.
//!
//! Two pools over one SQLite database: `readers` (`--pool-size`
//! connections, `query_only`) for GETs, and `writer`, a single connection,
//! for every write, used by one thread. One writer means writes queue for
//! it, in order, instead of spinning on SQLite's file lock; WAL lets readers
//! go on while it writes. The writer thread runs the writes queued in one
//! `BEGIN IMMEDIATE` transaction, each in a savepoint, and one commit serves
//! them all (`batch`). Every
//! statement is stepped to completion (an unfinished statement pins the WAL
//! and stops checkpoints).
//!
//! Durability: `journal_mode=WAL` with `synchronous=NORMAL`. A write that was
//! acknowledged survives a crash of the process (SIGKILL, panic, OOM kill);
//! on power loss or a kernel crash the last transactions before it may roll
//! back, but the database is never corrupted.

mod articles;
mod batch;
mod files;
mod idempotency;
mod import;
mod migrate;
mod outbox;
mod users;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use r2d2::{Pool, PooledConnection};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use files::FileGuard;
use migrate::migrate;

use super::{busy, Operations, StoreError, BUSY_TIMEOUT};

/// Private page cache of each reader, in KiB (SQLite's default is 2000).
const READER_CACHE_KIB: u32 = 256;

/// The readiness round trip.
const PING: &str = articles::COUNT_ALL;

/// Statements kept prepared per connection: every listing variant fits.
const STATEMENT_CACHE: usize = 128;

type Pooled = PooledConnection<SqliteConnectionManager>;

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => busy(err),
            Some(ErrorCode::DiskFull) => StoreError::Full,
            Some(ErrorCode::ConstraintViolation) => StoreError::Duplicate(Box::new(err)),
            Some(
                ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::ReadOnly
                | ErrorCode::PermissionDenied
                | ErrorCode::DatabaseCorrupt
                | ErrorCode::NotADatabase,
            ) => StoreError::Unavailable(Box::new(err)),
            // The schema is migrated before the store serves, so a table
            // gone since is a file truncated or overwritten under us: the
            // database is damaged, not the request.
            _ if schema_gone(&err) => StoreError::Unavailable(Box::new(err)),
            _ => StoreError::Internal(Box::new(err)),
        }
    }
}

impl From<rusqlite::Error> for super::ExportError {
    fn from(err: rusqlite::Error) -> super::ExportError {
        super::ExportError::Store(err.into())
    }
}

/// Copies the database at `db` into the new file `into` (`VACUUM INTO`):
/// one read transaction, so a server writing meanwhile is not held up and
/// the copy is one consistent snapshot, a single file with no WAL beside
/// it. The copy is then checked (`PRAGMA integrity_check`). Returns its
/// size in bytes.
pub fn backup(db: &Path, into: &Path) -> Result<u64, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(db, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let target = into
        .to_str()
        .ok_or_else(|| StoreError::unavailable(format!("{}: not UTF-8", into.display())))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    drop(conn);
    let copy = Connection::open_with_flags(into, flags)?;
    // A single file: the copy keeps no WAL of its own.
    copy.pragma_update(None, "journal_mode", "DELETE")?;
    let verdict: String = copy.pragma_query_value(None, "integrity_check", |row| row.get(0))?;
    drop(copy);
    if verdict != "ok" {
        let _ = std::fs::remove_file(into);
        return Err(StoreError::unavailable(format!(
            "the copy failed its check: {verdict}"
        )));
    }
    let size = std::fs::metadata(into)
        .map_err(|err| StoreError::unavailable(format!("{}: {err}", into.display())))?;
    Ok(size.len())
}

fn schema_gone(err: &rusqlite::Error) -> bool {
    matches!(err, rusqlite::Error::SqliteFailure(_, Some(msg)) if msg.starts_with("no such table"))
}

/// The database: a pool of readers and one writer.
pub struct SqliteStore {
    /// The thread that runs every write on `writer`, in batches (group
    /// commit). Dropped first: it finishes the writes queued.
    writes: batch::WriterThread,
    readers: Pool<SqliteConnectionManager>,
    writer: Pool<SqliteConnectionManager>,
    /// For `:memory:`, a connection held open for the life of the store: an
    /// in-memory database lives only while a connection to it is open.
    _anchor: Option<Mutex<Connection>>,
    /// For a file, whether its path still names the files opened: writes
    /// are refused once it does not (see `files`).
    files: Option<Arc<FileGuard>>,
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database at `location`,
    /// with `readers` reading connections. `:memory:` is a private in-memory
    /// database shared by every pooled connection of this store.
    pub fn open(location: &str, readers: u32, waiting: fn()) -> Result<SqliteStore, StoreError> {
        let target = Target::of(location);
        match target.in_memory {
            true => log::info!("database: in memory"),
            // Relative paths are relative to the working directory: naming
            // the file in full shows which database a command really used.
            false => log::info!("database: {}", absolute(location)),
        }
        let mut anchor = target.connect()?;
        configure(&anchor, Role::Migrator)?;
        if !target.in_memory {
            // Persistent: set once here, stays set in the file.
            anchor.pragma_update(None, "journal_mode", "WAL")?;
        }
        migrate(&mut anchor)?;

        let files = match target.in_memory {
            true => None,
            false => Some(Arc::new(FileGuard::new(Path::new(location))?)),
        };
        let writer = target.pool(1, Role::Writer)?;
        let store = SqliteStore {
            readers: target.pool(readers, Role::Reader)?,
            writes: batch::WriterThread::start(writer.clone(), files.clone(), waiting)?,
            writer,
            _anchor: target.in_memory.then(|| Mutex::new(anchor)),
            files,
        };
        Ok(store)
    }

    /// Applies pending migrations to the database at `location` without
    /// opening pools; returns the schema version before and after.
    pub fn migrate(location: &str) -> Result<(u32, u32), StoreError> {
        let mut conn = Target::of(location).connect()?;
        configure(&conn, Role::Migrator)?;
        migrate(&mut conn)
    }

    fn read(&self) -> Result<Pooled, StoreError> {
        Ok(self.readers.get()?)
    }

    pub(super) fn check_files(&self) -> Result<(), StoreError> {
        self.files.as_deref().map_or(Ok(()), FileGuard::check)
    }
}

impl Operations for SqliteStore {
    /// A round trip to the database within `limit`, for readiness checks;
    /// a database whose files were moved is not ready.
    fn ping(&self, limit: Duration) -> Result<(), StoreError> {
        self.check_files()?;
        let conn = self.readers.get_timeout(limit)?;
        // Reads the schema and a page of a table, so that a database file
        // damaged in place is not ready either (`SELECT 1` reads nothing).
        conn.prepare_cached(PING)?.query_row([], |_| Ok(()))?;
        Ok(())
    }

    /// (pool, connections in use, idle connections) of each pool.
    fn pool_states(&self) -> Vec<(&'static str, u32, u32)> {
        [("read", &self.readers), ("write", &self.writer)]
            .into_iter()
            .map(|(name, pool)| {
                let state = pool.state();
                (
                    name,
                    state.connections - state.idle_connections,
                    state.idle_connections,
                )
            })
            .collect()
    }

    /// Copies the WAL into the database and truncates it, so a clean stop
    /// leaves one self-contained file (SQLite removes the empty WAL when the
    /// last connection closes).
    fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.writer.get()?;
        if conn.is_autocommit() {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    fn write_counts(&self) -> (u64, u64) {
        self.writes.group().write_counts()
    }
}

/// Where the database is and how to open it.
struct Target {
    path: String,
    flags: OpenFlags,
    in_memory: bool,
}

impl Target {
    fn of(location: &str) -> Target {
        let base = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if location == ":memory:" {
            // A shared-cache in-memory database answers SQLITE_LOCKED to
            // concurrent writers. The memdb VFS with a name starting in "/"
            // is shared by every connection of this process and uses
            // ordinary locks, which the busy timeout waits on.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            Target {
                path: format!("file:/articles-{}-{n}?vfs=memdb", std::process::id()),
                flags: base | OpenFlags::SQLITE_OPEN_URI,
                in_memory: true,
            }
        } else {
            Target {
                path: location.to_owned(),
                flags: base,
                in_memory: false,
            }
        }
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        Ok(Connection::open_with_flags(&self.path, self.flags)?)
    }

    fn pool(&self, size: u32, role: Role) -> Result<Pool<SqliteConnectionManager>, StoreError> {
        // The file exists by now (`open` made and migrated it). A pool opens
        // connections later too, and one opened after the file was removed
        // must fail, not create an empty database at the path and answer
        // reads from it; then a read waits for a connection to the real one.
        let flags = match self.in_memory {
            true => self.flags,
            false => self.flags - OpenFlags::SQLITE_OPEN_CREATE,
        };
        let manager = SqliteConnectionManager::file(&self.path)
            .with_flags(flags)
            .with_init(move |conn| configure(conn, role));
        // One connection opened at start (it proves the database opens);
        // the rest when first wanted, so that start-up waits for one:
        // cold start 7.8-8.6 -> 6.9-7.4 ms with 4 readers.
        let pool = Pool::builder()
            .max_size(size)
            .min_idle(Some(1))
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(BUSY_TIMEOUT)
            .test_on_check_out(false)
            .build(manager)?;
        Ok(pool)
    }
}

/// Process-wide SQLite settings, for `main` before it starts a thread or
/// opens a database: SQLite takes them only before it initializes.
///
/// Memory statistics off (`SQLITE_CONFIG_MEMSTATUS`, which SQLite's own
/// advice for speed also turns off): with them on, every allocation SQLite
/// makes takes one process-wide mutex to count it, and under load workers
/// queued on it (about 3 % of the core serving `GET /articles?page=1`, a
/// quarter of it waiting). Nothing here reads those statistics.
pub fn configure_process() {
    // SAFETY: sqlite3_config's documented precondition holds: no other
    // thread uses SQLite yet. Once SQLite has initialized it refuses with
    // SQLITE_MISUSE and changes nothing, so its result needs no handling.
    // MEMSTATUS takes one int.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
    }
}

/// `location` as an absolute path, for the log.
fn absolute(location: &str) -> String {
    std::path::absolute(location)
        .map_or_else(|_| location.to_owned(), |path| path.display().to_string())
}

/// What a connection is for.
#[derive(Clone, Copy)]
enum Role {
    /// A pooled reader.
    Reader,
    /// The pooled writer.
    Writer,
    /// Opens the database and migrates it.
    Migrator,
}

/// Per-connection settings.
fn configure(conn: &Connection, role: Role) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;",
    )?;
    match role {
        // Readers read pages with pread into a small private cache; the OS
        // page cache holds the one shared copy. Not mmap: SQLite drops a
        // reader's whole mapping at the first read after any commit, and
        // under writes that munmap + mmap (with a TLB flush on every core the
        // process runs on) dominated a token lookup, and mapped pages count
        // as resident memory (figures in `docs/performance.md`).
        Role::Reader => conn.execute_batch(&format!(
            "PRAGMA query_only = ON;
             PRAGMA cache_size = -{READER_CACHE_KIB};"
        ))?,
        // Each write of a batch runs in a savepoint, whose journal holds the
        // pages the write changes. Past 64 KiB (a POST comes close) SQLite
        // moved it to a temporary file, created and unlinked per write and
        // written in 4-byte pieces, a large share of a POST's cost. In
        // memory it holds the pages of one write, which `--max-body` bounds
        // like the body already in memory. Not for migrations, whose one
        // statement may change every page of a table.
        Role::Writer => conn.execute_batch("PRAGMA temp_store = MEMORY;")?,
        Role::Migrator => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_keeps_savepoint_journals_in_memory() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let temp_store: i64 = store
            .writer
            .get()
            .unwrap()
            .pragma_query_value(None, "temp_store", |row| row.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "PRAGMA temp_store = MEMORY on the writer");
    }

    #[test]
    fn a_table_gone_under_the_store_is_unavailable_not_internal() {
        let conn = Connection::open_in_memory().unwrap();
        let err = conn
            .query_row("SELECT count(*) FROM articles", [], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap_err();
        assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
        let err = conn.execute_batch("SELECT nonsense(").unwrap_err();
        assert!(matches!(StoreError::from(err), StoreError::Internal(_)));
    }
}
