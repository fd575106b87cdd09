//! SQLite migrations from `schema.sql`, tracked with `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::store::schema::{check_not_newer, migrations, LATEST_VERSION, SQLITE};
use crate::store::StoreError;

/// Brings the database up to `LATEST_VERSION`, one transaction per
/// migration. Refuses a database whose version is newer than this binary.
/// Returns the version before and after.
pub fn migrate(conn: &mut Connection) -> Result<(u32, u32), StoreError> {
    let before: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    check_not_newer(before)?;
    for (version, sql) in migrations(SQLITE) {
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
