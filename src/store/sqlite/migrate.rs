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
    fn migration_5_copies_each_articles_tags_into_its_row() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (version, sql) in migrations(SQLITE).into_iter().take_while(|(v, _)| *v <= 4) {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", version).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO articles (id, title, content, created_at, updated_at)
                 VALUES (1, 't', 'c', 0, 0), (2, 't', 'c', 0, 0);
             INSERT INTO article_tags VALUES (1, 'web'), (1, 'python');",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), (4, LATEST_VERSION));
        let tags = |id: i64| -> Option<Vec<String>> {
            let joined: Option<String> = conn
                .query_row("SELECT tags FROM articles WHERE id = ?1", [id], |row| {
                    row.get(0)
                })
                .unwrap();
            joined.map(|j| {
                let mut tags: Vec<String> = j.split('\u{1f}').map(str::to_owned).collect();
                tags.sort();
                tags
            })
        };
        assert_eq!(tags(1), Some(vec!["python".into(), "web".into()]));
        assert_eq!(tags(2), None);
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
