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

    /// A database at `version`, with `foreign_keys` on as the store has it.
    fn database_at(version: u32) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for (v, sql) in migrations(SQLITE)
            .into_iter()
            .take_while(|(v, _)| *v <= version)
        {
            conn.execute_batch(sql).unwrap();
            conn.pragma_update(None, "user_version", v).unwrap();
        }
        conn
    }

    #[test]
    fn migration_7_keeps_events_and_deliveries() {
        let mut conn = database_at(6);
        // Events 1 to 4 under AUTOINCREMENT; 1 and 4 deleted since.
        for n in 1..=4 {
            conn.execute(
                "INSERT INTO webhook_events (webhook_id, type, created_at, body)
                 VALUES (?1, 'article.created', ?2, '{}')",
                rusqlite::params![format!("msg_{n}"), n],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO webhook_deliveries (event_id, url, next_attempt_at, created_at)
                 VALUES (2, 'http://a/', 5, 2), (3, 'http://a/', 5, 3);
             DELETE FROM webhook_events WHERE id IN (1, 4);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn).unwrap(), (6, LATEST_VERSION));
        let one = |sql: &str| -> i64 { conn.query_row(sql, [], |row| row.get(0)).unwrap() };
        assert_eq!(one("SELECT count(*) FROM webhook_events"), 2);
        assert_eq!(one("SELECT count(*) FROM webhook_deliveries"), 2);
        assert_eq!(
            one("SELECT horizon FROM feed_horizon"),
            3,
            "the events from before the feed are not served"
        );
        // The deliveries follow their events, cascade included.
        conn.execute("DELETE FROM webhook_events WHERE id = 2", [])
            .unwrap();
        assert_eq!(one("SELECT count(*) FROM webhook_deliveries"), 1);
        assert_eq!(one("SELECT count(*) FROM pragma_foreign_key_check"), 0);
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
