//! Idempotency-key SQL: responses saved for retries of `POST /articles`.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::articles::insert_article;
use super::SqliteStore;
use crate::model::article::{Article, ArticleChange};
use crate::model::User;
use crate::store::Outbox;
use crate::store::{Creation, IdempotencyKeys, KeyedRequest, SavedKey, StoreError};
use crate::store::{SavedResponse, KEYS_PRUNED_PER_SAVE, KEY_LIFETIME_MILLIS};
use crate::util::time::now_millis;

const SELECT_KEY: &str = "SELECT created_at, fingerprint, status, headers, body \
     FROM idempotency_keys WHERE scope = ?1 AND idempotency_key = ?2";

const DELETE_KEY: &str = "DELETE FROM idempotency_keys WHERE scope = ?1 AND idempotency_key = ?2";

const INSERT_KEY: &str = "INSERT INTO idempotency_keys \
     (scope, idempotency_key, fingerprint, created_at, status, headers, body) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// The oldest expired keys, at most `?2` of them, found by the age index.
const PRUNE_KEYS: &str = "DELETE FROM idempotency_keys WHERE rowid IN \
     (SELECT rowid FROM idempotency_keys WHERE created_at <= ?1 ORDER BY created_at LIMIT ?2)";

impl IdempotencyKeys for SqliteStore {
    fn create_article_once(
        &self,
        request: &KeyedRequest<'_>,
        author: Option<&User>,
        outbox: &Outbox,
        decide: &mut (dyn FnMut() -> Result<ArticleChange, StoreError> + Send),
        respond: &mut (dyn FnMut(&Article) -> SavedResponse + Send),
    ) -> Result<Creation, StoreError> {
        let now = now_millis();
        let expired = now - KEY_LIFETIME_MILLIS;
        let (creation, recorded) = self.write(|batch| {
            let tx = batch.create_savepoint()?;
            match find_key(&tx, request)? {
                Some((created_at, saved)) if created_at > expired => {
                    return Ok((Creation::Earlier(saved), None));
                }
                Some(_) => delete_key(&tx, request)?,
                None => {}
            }
            let change = decide()?;
            tx.prepare_cached(PRUNE_KEYS)?
                .execute(params![expired, KEYS_PRUNED_PER_SAVE])?;
            let group = self.writes.group();
            let (article, recorded) = insert_article(&tx, group, &change, author, outbox)?;
            let response = respond(&article);
            save_key(&tx, request, now, &response)?;
            tx.commit()?;
            Ok((Creation::Created(response), Some(recorded)))
        })?;
        if let Some(recorded) = recorded {
            outbox.committed(recorded);
        }
        Ok(creation)
    }
}

/// The saved response under a key, with its `created_at`, expired or not.
fn find_key(
    conn: &Connection,
    request: &KeyedRequest<'_>,
) -> Result<Option<(i64, SavedKey)>, StoreError> {
    Ok(conn
        .prepare_cached(SELECT_KEY)?
        .query_row(params![request.scope, request.key], read_key)
        .optional()?)
}

fn delete_key(conn: &Connection, request: &KeyedRequest<'_>) -> Result<(), StoreError> {
    conn.prepare_cached(DELETE_KEY)?
        .execute(params![request.scope, request.key])?;
    Ok(())
}

fn save_key(
    conn: &Connection,
    request: &KeyedRequest<'_>,
    now: i64,
    response: &SavedResponse,
) -> Result<(), StoreError> {
    let headers = serde_json::to_string(&response.headers)
        .map_err(|err| StoreError::internal(format!("saved headers: {err}")))?;
    conn.prepare_cached(INSERT_KEY)?.execute(params![
        request.scope,
        request.key,
        &request.fingerprint[..],
        now,
        response.status,
        headers,
        response.body,
    ])?;
    Ok(())
}

fn read_key(row: &Row<'_>) -> rusqlite::Result<(i64, SavedKey)> {
    let headers: String = row.get(3)?;
    let headers = serde_json::from_str(&headers).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(err))
    })?;
    let saved = SavedKey {
        fingerprint: row.get(1)?,
        response: SavedResponse {
            status: row.get(2)?,
            headers,
            body: row.get(4)?,
        },
    };
    Ok((row.get(0)?, saved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(title: &str) -> ArticleChange {
        ArticleChange {
            title: Some(title.into()),
            content: Some("c".into()),
            tags: Some(vec![]),
        }
    }

    fn keyed(key: &str, print: u8) -> KeyedRequest<'_> {
        KeyedRequest {
            scope: 0,
            key,
            fingerprint: [print; 32],
        }
    }

    fn respond(article: &Article) -> SavedResponse {
        SavedResponse {
            status: 201,
            headers: vec![("Location".into(), format!("/articles/{}", article.id))],
            body: article.title.clone().into_bytes(),
        }
    }

    fn create(store: &SqliteStore, request: &KeyedRequest<'_>, title: &str) -> Creation {
        store
            .create_article_once(
                request,
                None,
                &Outbox::default(),
                &mut || Ok::<_, StoreError>(change(title)),
                &mut respond,
            )
            .unwrap()
    }

    fn count(store: &SqliteStore, sql: &str) -> i64 {
        let conn = store.read().unwrap();
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    /// Makes every saved key older than its lifetime.
    fn expire_all(store: &SqliteStore) {
        store
            .short_write(|tx| {
                tx.execute(
                    "UPDATE idempotency_keys SET created_at = created_at - ?1",
                    [KEY_LIFETIME_MILLIS + 1],
                )?;
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn creates_once_then_returns_the_saved_response() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let Creation::Created(first) = create(&store, &keyed("k", 1), "one") else {
            panic!("not created")
        };
        let again = store
            .create_article_once(
                &keyed("k", 2),
                None,
                &Outbox::default(),
                &mut || -> Result<ArticleChange, StoreError> { panic!("decided twice") },
                &mut respond,
            )
            .unwrap();
        assert_eq!(
            again,
            Creation::Earlier(SavedKey {
                fingerprint: vec![1; 32],
                response: first
            })
        );
        assert_eq!(count(&store, "SELECT count(*) FROM articles"), 1);
    }

    #[test]
    fn a_refused_request_leaves_the_key_free() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let refused = store.create_article_once(
            &keyed("k", 1),
            None,
            &Outbox::default(),
            &mut || Err(StoreError::internal("invalid")),
            &mut respond,
        );
        assert!(refused.is_err());
        assert_eq!(count(&store, "SELECT count(*) FROM idempotency_keys"), 0);
        assert!(matches!(
            create(&store, &keyed("k", 1), "t"),
            Creation::Created(_)
        ));
    }

    #[test]
    fn an_expired_key_is_used_afresh_and_old_ones_are_pruned() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let keys: Vec<String> = (0..KEYS_PRUNED_PER_SAVE + 5)
            .map(|n| format!("k{n}"))
            .collect();
        for key in &keys {
            create(&store, &keyed(key, 1), "old");
        }
        expire_all(&store);
        assert!(matches!(
            create(&store, &keyed("k0", 2), "new"),
            Creation::Created(_)
        ));
        // k0 replaced, then at most KEYS_PRUNED_PER_SAVE of the other expired ones.
        assert_eq!(
            count(&store, "SELECT count(*) FROM idempotency_keys"),
            keys.len() as i64 - KEYS_PRUNED_PER_SAVE
        );
        assert!(matches!(
            create(&store, &keyed("k0", 3), "third"),
            Creation::Earlier(SavedKey { ref fingerprint, .. }) if fingerprint == &vec![2; 32]
        ));
    }

    #[test]
    fn keys_are_scoped() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let mut other = keyed("k", 1);
        other.scope = 7;
        create(&store, &keyed("k", 1), "anonymous");
        assert!(matches!(create(&store, &other, "t"), Creation::Created(_)));
    }

    #[test]
    fn pruning_reads_the_age_index() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let conn = store.read().unwrap();
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {PRUNE_KEYS}"))
            .unwrap();
        let lines: Vec<String> = stmt
            .query_map(params![0, KEYS_PRUNED_PER_SAVE], |row| row.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            lines.iter().any(|l| l.contains("idempotency_keys_by_age")),
            "{lines:?}"
        );
        // Every row deleted is found by rowid, none by scanning.
        assert!(lines.iter().any(|l| l.contains("(rowid=?)")), "{lines:?}");
        assert!(!lines.iter().any(|l| l.starts_with("SCAN")), "{lines:?}");
    }
}
