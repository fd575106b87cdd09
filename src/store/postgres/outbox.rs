//! Webhook outbox SQL for PostgreSQL. Several replicas may dispatch from one
//! database: a delivery is claimed (`FOR UPDATE SKIP LOCKED`, then its due
//! time moved to the end of a lease) before anyone sends it.

use postgres::GenericClient;

use super::{Db, PgStore};
use crate::model::article::Article;
use crate::model::event::{event_body, new_message_id, EventType};
use crate::store::Outbox;
use crate::store::{Deliveries, DeliveryEnd, PendingDelivery, StoreError};

const INSERT_EVENT: &str = "INSERT INTO webhook_events (webhook_id, type, created_at, body) \
     VALUES ($1, $2, $3, $4) RETURNING id";

/// Due at once: the dispatcher is woken right after the commit.
const INSERT_DELIVERIES: &str = "INSERT INTO webhook_deliveries \
     (event_id, url, next_attempt_at, created_at) SELECT $1, unnest($2::text[]), $3, $3";

const PENDING_URLS: &str = "SELECT DISTINCT url FROM webhook_deliveries WHERE state = 'pending'";

/// The due deliveries of one URL that nobody else is claiming right now,
/// soonest first, leased until `$4`.
const CLAIM: &str = "UPDATE webhook_deliveries d SET next_attempt_at = $4 \
     FROM webhook_events e \
     WHERE e.id = d.event_id AND (d.event_id, d.url) IN ( \
       SELECT event_id, url FROM webhook_deliveries \
       WHERE url = $1 AND state = 'pending' AND next_attempt_at <= $2 \
       ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
     RETURNING d.event_id, e.webhook_id, e.body, d.attempts, d.created_at";

const NEXT_DUE: &str =
    "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE url = $1 AND state = 'pending'";

const RELEASE: &str = "UPDATE webhook_deliveries SET next_attempt_at = $3 \
     WHERE event_id = ANY($1) AND url = $2 AND state = 'pending'";

/// Every outcome write is conditional on `pending`: once a delivery is
/// done (say, dropped by a 410), a late outcome cannot revive it.
const FINISH: &str = "UPDATE webhook_deliveries SET state = $3, attempts = attempts + 1, \
     done_at = $4 WHERE event_id = $1 AND url = $2 AND state = 'pending'";

const RETRY: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $3 \
     WHERE event_id = $1 AND url = $2 AND state = 'pending'";

const DROP_URL: &str = "UPDATE webhook_deliveries SET state = 'gone', done_at = $2 \
     WHERE url = $1 AND state = 'pending'";

const BACKLOG: &str =
    "SELECT count(*), min(created_at) FROM webhook_deliveries WHERE state = 'pending'";

/// Old events none of whose deliveries is pending, oldest first, a batch.
const PRUNE: &str = "DELETE FROM webhook_events WHERE id IN (SELECT e.id FROM webhook_events e \
     WHERE e.created_at <= $1 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
       WHERE d.event_id = e.id AND d.state = 'pending') \
     ORDER BY e.created_at LIMIT $2)";

/// Records an event for `article` inside the caller's transaction, with one
/// delivery per live URL of `outbox`. Writes nothing, and returns false,
/// when no webhook is configured.
pub(super) fn record_event<C: GenericClient>(
    db: &mut Db<'_, C>,
    outbox: &Outbox,
    kind: EventType,
    at: i64,
    article: &Article,
) -> Result<bool, StoreError> {
    let urls = outbox.live_urls();
    if urls.is_empty() {
        return Ok(false);
    }
    let body = event_body(kind, at, article);
    let event: i64 = db
        .query_one(
            INSERT_EVENT,
            &[&new_message_id(), &kind.as_str(), &at, &body],
        )?
        .get(0);
    db.execute(INSERT_DELIVERIES, &[&event, &urls, &at])?;
    Ok(true)
}

/// After the commit of a write that returned `(value, queued)`: wakes the
/// dispatcher if the write queued an event (only now, so that it finds it).
pub(super) fn announced<T>(outbox: &Outbox, (value, queued): (T, bool)) -> T {
    if queued {
        outbox.notify();
    }
    value
}

impl Deliveries for PgStore {
    fn pending_webhook_urls(&self) -> Result<Vec<String>, StoreError> {
        self.read(|db| {
            db.query(PENDING_URLS, &[])?
                .iter()
                .map(|row| Ok(row.try_get(0)?))
                .collect()
        })
    }

    fn claim_deliveries(
        &self,
        url: &str,
        limit: usize,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let mut claimed = self.write(|db| {
            db.query(CLAIM, &[&url, &now, &(limit as i64), &lease_until])?
                .iter()
                .map(|row| {
                    Ok(PendingDelivery {
                        event: row.try_get(0)?,
                        webhook_id: row.try_get(1)?,
                        body: row.try_get(2)?,
                        attempts: row.try_get::<_, i32>(3)?.max(0) as u32,
                        created_at: row.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        // RETURNING keeps no order; the oldest event goes first.
        claimed.sort_by_key(|delivery| delivery.event);
        Ok(claimed)
    }

    fn next_delivery_due(&self, url: &str) -> Result<Option<i64>, StoreError> {
        self.read(|db| Ok(db.query_one(NEXT_DUE, &[&url])?.try_get(0)?))
    }

    fn release_deliveries(&self, url: &str, events: &[i64], now: i64) -> Result<(), StoreError> {
        self.write(|db| db.execute(RELEASE, &[&events, &url, &now]).map(drop))
    }

    fn finish_delivery(
        &self,
        event: i64,
        url: &str,
        end: DeliveryEnd,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(|db| {
            db.execute(FINISH, &[&event, &url, &end.as_str(), &now])?;
            if end != DeliveryEnd::Gone {
                return Ok(0);
            }
            Ok(db.execute(DROP_URL, &[&url, &now])? as usize)
        })
    }

    fn retry_delivery(&self, event: i64, url: &str, at: i64) -> Result<(), StoreError> {
        self.write(|db| db.execute(RETRY, &[&event, &url, &at]).map(drop))
    }

    fn webhook_backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        self.read(|db| {
            let row = db.query_one(BACKLOG, &[])?;
            let count: i64 = row.try_get(0)?;
            Ok((count.max(0) as u64, row.try_get(1)?))
        })
    }

    fn prune_webhook_events(&self, before: i64, batch: usize) -> Result<usize, StoreError> {
        self.write(|db| Ok(db.execute(PRUNE, &[&before, &(batch as i64)])? as usize))
    }
}
