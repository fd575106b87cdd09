//! The database under test, and the temporary directory that owns it.
//!
//! The backend follows the package's `postgres` feature. Without it the
//! database is SQLite, a file in the test's temporary directory. With it
//! (`cargo test --features postgres`) it is PostgreSQL: `ARTICLES_TEST_POSTGRES`
//! must hold an admin URL of a cluster on which the tests may create and
//! drop databases (`postgres://postgres@127.0.0.1:55432/postgres`, see
//! `.ci/postgres`), and each temporary directory that asks for a database
//! gets a fresh one, created with `psql` and dropped when the last directory
//! holding it is dropped.
//!
//! A test of one backend only is ignored on the other, with its reason:
//! `#[cfg_attr(feature = "postgres", ignore = "SQLite only: ...")]`, or
//! `#[cfg_attr(not(feature = "postgres"), ignore = "needs PostgreSQL: ...")]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// The variable that names the PostgreSQL cluster under test.
const POSTGRES_VAR: &str = "ARTICLES_TEST_POSTGRES";

/// Whether the suite runs on PostgreSQL: built with the `postgres` feature.
pub fn postgres() -> bool {
    cfg!(feature = "postgres")
}

/// The admin URL of the PostgreSQL cluster under test, which a run with the
/// `postgres` feature needs.
fn postgres_admin() -> String {
    match std::env::var(POSTGRES_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => panic!(
            "the tests run on PostgreSQL (built with --features postgres): set \
             {POSTGRES_VAR} to the admin URL of a cluster they may create \
             databases on (export {POSTGRES_VAR}=$(.ci/postgres start)), or run \
             .ci/run"
        ),
    }
}

/// Runs `psql` on `url` with `sql`; returns its standard output (unaligned,
/// tuples only). Panics with psql's message if it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("psql (PostgreSQL's client) must be on PATH: {e}"));
    assert!(
        output.status.success(),
        "psql {sql:?} on {url}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `admin` (a `postgres://` URL) with its database name replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (admin, String::new()),
    };
    let authority_at = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_at..]
        .find('/')
        .map_or(base.len(), |at| authority_at + at);
    format!("{}/{name}{query}", &base[..authority_end])
}

/// A PostgreSQL database made for one test; dropped (connections and all)
/// with the last handle.
pub struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates a database with a name no other test or run uses.
    fn create(admin: &str) -> PgDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "articles_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        psql(admin, &format!("CREATE DATABASE \"{name}\""));
        PgDatabase {
            admin: admin.to_owned(),
            url: with_database(admin, &name),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let output = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.admin,
                "-c",
                &sql,
            ])
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "could not drop {}: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(err) => eprintln!("could not drop {}: {err}", self.name),
        }
    }
}

/// A temporary directory, removed on drop; on PostgreSQL also the owner of
/// the test's database (see `TempDir::database`).
pub struct TempDir {
    path: PathBuf,
    postgres: OnceLock<Arc<PgDatabase>>,
}

impl TempDir {
    pub fn new() -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "articles-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir {
            path,
            postgres: OnceLock::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `--db` value for a server whose files live here: the SQLite file
    /// `test.db` in it, or on PostgreSQL the URL of a fresh database that
    /// lives as long as this directory (the same one on every call).
    pub fn database(&self) -> String {
        if !postgres() {
            return self.path().join("test.db").to_str().unwrap().to_owned();
        }
        self.postgres
            .get_or_init(|| Arc::new(PgDatabase::create(&postgres_admin())))
            .url
            .clone()
    }

    /// A new temporary directory that shares this one's PostgreSQL database,
    /// if it has one, so that the database lives until both are dropped.
    pub fn sharing_database(&self) -> TempDir {
        let dir = TempDir::new();
        if let Some(db) = self.postgres.get() {
            let _ = dir.postgres.set(Arc::clone(db));
        }
        dir
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        // The database, if any, goes with the last directory holding it.
    }
}
