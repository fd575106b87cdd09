//! Idempotency-key SQL for PostgreSQL.

use postgres::{GenericClient, Row};

use super::articles::insert_article;
use super::{Db, PgStore};
use crate::model::article::{Article, ArticleChange};
use crate::model::User;
use crate::store::Outbox;
use crate::store::{Creation, IdempotencyKeys, KeyedRequest, SavedKey, StoreError};
use crate::store::{SavedResponse, KEYS_PRUNED_PER_SAVE, KEY_LIFETIME_MILLIS};
use crate::util::time::now_millis;

/// The saved response, locked: the same key arriving through another
/// replica waits here for this transaction to end.
const SELECT_KEY: &str = "SELECT created_at, fingerprint, status, headers, body \
     FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2 FOR UPDATE";

const DELETE_KEY: &str = "DELETE FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2";

const INSERT_KEY: &str = "INSERT INTO idempotency_keys \
     (scope, idempotency_key, fingerprint, created_at, status, headers, body) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// The oldest expired keys, at most `$2`, skipping any another transaction
/// holds.
const PRUNE_KEYS: &str = "DELETE FROM idempotency_keys WHERE (scope, idempotency_key) IN \
     (SELECT scope, idempotency_key FROM idempotency_keys WHERE created_at <= $1 \
      ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

impl IdempotencyKeys for PgStore {
    /// Two replicas given a new key at once both find no row; the second
    /// to insert it fails on the primary key and rolls back whole, article
    /// included (`StoreError::KeyInUse`: the client retries and gets the
    /// first one's response).
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
        let written = self
            .write(|db| {
                match find_key(db, request)? {
                    Some((created_at, saved)) if created_at > expired => {
                        return Ok((Creation::Earlier(saved), None));
                    }
                    Some(_) => {
                        db.execute(DELETE_KEY, &[&request.scope, &request.key])?;
                    }
                    None => {}
                }
                let change = decide()?;
                db.execute(PRUNE_KEYS, &[&expired, &KEYS_PRUNED_PER_SAVE])?;
                let (article, recorded) = insert_article(db, &change, author, outbox)?;
                let response = respond(&article);
                save_key(db, request, now, &response)?;
                Ok((Creation::Created(response), Some(recorded)))
            })
            .map_err(|err| match err {
                // Only the key's own primary key can be taken meanwhile.
                StoreError::Duplicate(_) => StoreError::KeyInUse,
                other => other,
            })?;
        let (creation, recorded) = written;
        if let Some(recorded) = recorded {
            outbox.committed(recorded);
        }
        Ok(creation)
    }
}

/// The saved response under a key, with its `created_at`, expired or not.
fn find_key<C: GenericClient>(
    db: &mut Db<'_, C>,
    request: &KeyedRequest<'_>,
) -> Result<Option<(i64, SavedKey)>, StoreError> {
    db.query_opt(SELECT_KEY, &[&request.scope, &request.key])?
        .as_ref()
        .map(read_key)
        .transpose()
}

fn save_key<C: GenericClient>(
    db: &mut Db<'_, C>,
    request: &KeyedRequest<'_>,
    now: i64,
    response: &SavedResponse,
) -> Result<(), StoreError> {
    let headers = serde_json::to_string(&response.headers)
        .map_err(|err| StoreError::internal(format!("saved headers: {err}")))?;
    db.execute(
        INSERT_KEY,
        &[
            &request.scope,
            &request.key,
            &&request.fingerprint[..],
            &now,
            &i32::from(response.status),
            &headers,
            &response.body,
        ],
    )?;
    Ok(())
}

fn read_key(row: &Row) -> Result<(i64, SavedKey), StoreError> {
    let headers: String = row.try_get(3)?;
    let headers = serde_json::from_str(&headers)
        .map_err(|err| StoreError::internal(format!("saved headers: {err}")))?;
    let status: i32 = row.try_get(2)?;
    let saved = SavedKey {
        fingerprint: row.try_get(1)?,
        response: SavedResponse {
            status: u16::try_from(status)
                .map_err(|_| StoreError::internal(format!("saved status {status}")))?,
            headers,
            body: row.try_get(4)?,
        },
    };
    Ok((row.try_get(0)?, saved))
}
