//! Schema migrations from `schema.sql`, tracked with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

/// The schema, embedded at build time.
const SCHEMA: &str = include_str!("../../schema.sql");

/// The line that opens each migration section: `-- migration N: what`.
const MARKER: &str = "-- migration ";

/// The schema version this binary writes: the number of the last migration.
pub const LATEST_VERSION: u32 = {
    // Counted at compile time so a new section cannot be forgotten here.
    let bytes = SCHEMA.as_bytes();
    let marker = MARKER.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i + marker.len() <= bytes.len() {
        let at_line_start = i == 0 || bytes[i - 1] == b'\n';
        let mut matches = at_line_start;
        let mut j = 0;
        while matches && j < marker.len() {
            matches = bytes[i + j] == marker[j];
            j += 1;
        }
        if matches {
            count += 1;
        }
        i += 1;
    }
    count
};

/// The migrations in order: (version, SQL).
fn migrations() -> Vec<(u32, &'static str)> {
    let mut sections = Vec::new();
    let mut starts = SCHEMA
        .match_indices(MARKER)
        .filter(|(at, _)| *at == 0 || SCHEMA.as_bytes()[at - 1] == b'\n')
        .map(|(at, _)| at)
        .peekable();
    while let Some(start) = starts.next() {
        let end = starts.peek().copied().unwrap_or(SCHEMA.len());
        let section = &SCHEMA[start..end];
        let version = section[MARKER.len()..]
            .split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .expect("schema.sql: every migration marker is `-- migration N: ...`");
        sections.push((version, section));
    }
    sections
}

/// Brings the database up to `LATEST_VERSION`, one transaction per
/// migration. Refuses a database whose version is newer than this binary.
/// Returns the version before and after.
pub fn migrate(conn: &mut Connection) -> Result<(u32, u32), StoreError> {
    let before: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if before > LATEST_VERSION {
        return Err(StoreError::Schema(format!(
            "the database has schema version {before}, newer than the {LATEST_VERSION} this \
             articles {} understands: upgrade articles",
            env!("CARGO_PKG_VERSION")
        )));
    }
    for (version, sql) in migrations() {
        if version <= before {
            continue;
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
        log::info!("applied schema migration {version}");
    }
    Ok((before, LATEST_VERSION))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_up_without_gaps() {
        let versions: Vec<u32> = migrations().iter().map(|(v, _)| *v).collect();
        let expected: Vec<u32> = (1..=LATEST_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn migrates_a_new_database_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), (0, LATEST_VERSION));
        assert_eq!(
            migrate(&mut conn).unwrap(),
            (LATEST_VERSION, LATEST_VERSION)
        );
    }

    #[test]
    fn refuses_a_newer_database() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
