//! PostgreSQL migrations from `schema.sql` beside this file, tracked in the
//! one-row table `articles_schema`. Replicas starting at once take turns on
//! an advisory lock, so each migration runs once.

use postgres::Client;

use crate::store::schema::{check_not_newer, count_sections, migrations, LATEST_VERSION};
use crate::store::StoreError;

/// The schema, embedded at build time.
const SCHEMA: &str = include_str!("../../../migrations/postgres.sql");

// Both backends have the same migrations, numbered alike.
const _: () = assert!(count_sections(SCHEMA) == LATEST_VERSION);

/// The advisory lock every migrating replica takes: "articles" in ASCII.
const MIGRATION_LOCK: i64 = 0x6172_7469_636c_6573;

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS articles_schema (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    version  INTEGER NOT NULL
)";

/// Brings the database up to `LATEST_VERSION`, one transaction per
/// migration. Refuses a database whose version is newer than this binary.
/// Returns the version before and after.
pub fn migrate(client: &mut Client) -> Result<(u32, u32), StoreError> {
    let mut before = None;
    for (version, sql) in migrations(SCHEMA) {
        let mut tx = client.transaction()?;
        tx.query_one("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(VERSION_TABLE)?;
        let current = tx
            .query_opt("SELECT version FROM articles_schema", &[])?
            .map_or(0, |row| row.get::<_, i32>(0).max(0) as u32);
        check_not_newer(current)?;
        before.get_or_insert(current);
        if current >= LATEST_VERSION {
            // Up to date (the usual start): nothing more to check.
            break;
        }
        if version <= current {
            continue;
        }
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO articles_schema (version) VALUES ($1) \
             ON CONFLICT (only_row) DO UPDATE SET version = excluded.version",
            &[&(version as i32)],
        )?;
        tx.commit()?;
        log::info!("applied schema migration {version}");
    }
    Ok((before.unwrap_or(LATEST_VERSION), LATEST_VERSION))
}
