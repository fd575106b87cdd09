//! The versioning rule both backends' schemas follow.
//!
//! A schema file is append-only: each `-- migration N: what` section runs
//! once, in order, inside its own transaction, and the database records the
//! last one applied (SQLite in `PRAGMA user_version`, PostgreSQL in a
//! `schema_version` row). A database whose version is newer than the binary
//! is refused. Both backends have the same migrations, numbered alike.

use super::StoreError;

/// The SQLite schema (`schema.sql` at the top of the project).
pub const SQLITE: &str = include_str!("../../schema.sql");

/// The line that opens each migration section: `-- migration N: what`.
const MARKER: &str = "-- migration ";

/// The schema version this binary writes: the number of the last migration.
pub const LATEST_VERSION: u32 = count_sections(SQLITE);

/// How many migration sections `schema` has, at compile time.
pub const fn count_sections(schema: &str) -> u32 {
    let bytes = schema.as_bytes();
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
}

/// The migrations of `schema` in order: (version, SQL).
pub fn migrations(schema: &'static str) -> Vec<(u32, &'static str)> {
    let mut sections = Vec::new();
    let mut starts = schema
        .match_indices(MARKER)
        .filter(|(at, _)| *at == 0 || schema.as_bytes()[at - 1] == b'\n')
        .map(|(at, _)| at)
        .peekable();
    while let Some(start) = starts.next() {
        let end = starts.peek().copied().unwrap_or(schema.len());
        let section = &schema[start..end];
        let version = section[MARKER.len()..]
            .split(':')
            .next()
            .and_then(|n| n.trim().parse().ok())
            .expect("every migration marker is `-- migration N: ...`");
        sections.push((version, section));
    }
    sections
}

/// Refuses a database at version `found` if this binary is older.
pub fn check_not_newer(found: u32) -> Result<(), StoreError> {
    if found > LATEST_VERSION {
        return Err(StoreError::Schema(format!(
            "the database has schema version {found}, newer than the {LATEST_VERSION} this \
             articles {} understands: upgrade articles",
            env!("CARGO_PKG_VERSION")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_up_without_gaps() {
        let versions: Vec<u32> = migrations(SQLITE).iter().map(|(v, _)| *v).collect();
        let expected: Vec<u32> = (1..=LATEST_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn only_newer_databases_are_refused() {
        assert!(check_not_newer(LATEST_VERSION).is_ok());
        let err = check_not_newer(LATEST_VERSION + 1).unwrap_err();
        assert!(err.to_string().contains("newer"), "{err}");
    }
}
