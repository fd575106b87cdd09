//! Events SQL for PostgreSQL: every change's event, the change feed's reads
//! and pruning, and the webhook deliveries. Several replicas may dispatch
//! from one database: a delivery is claimed (`FOR UPDATE SKIP LOCKED`, then
//! its due time moved to the end of a lease) before anyone sends it.
//!
//! The feed's order: an identity's values are handed out in the order
//! transactions ask, not the order they commit, so a reader could see event
//! 11 before event 10 commits and then never look back. Every transaction
//! that records an event therefore takes the transaction-scoped advisory
//! lock `FEED_LOCK` first, just before it takes its id; the lock is held to
//! its commit, so events get their ids and commit one transaction at a
//! time, in order, whatever the number of replicas. The writes still run in
//! parallel up to that point: only the event insert and the commit are
//! serialized.

use std::sync::Arc;

use postgres::GenericClient;

use super::{Db, PgStore};
use crate::model::article::Article;
use crate::model::event::{event_body, new_message_id, EventType};
use crate::store::outbox::{match_keys, split_tags};
use crate::store::{Deliveries, DeliveryEnd, PendingDelivery, StoreError};
use crate::store::{Events, EventsRead, Outbox, Recorded, StoredEvent};

/// The advisory lock that puts events in commit order (see the module's
/// docs): any constant no other application on the database uses.
pub(super) const FEED_LOCK: i64 = 0x6172_7469_6665_6564; // "artifeed"

pub(super) const TAKE_FEED_LOCK: &str = "SELECT pg_advisory_xact_lock($1)";

const INSERT_EVENT: &str = "INSERT INTO webhook_events \
     (webhook_id, type, created_at, body, match_tags, match_author) \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";

/// The newest `seq` committed, or passed over if none is kept after it.
pub(super) const FEED_POSITION: &str = "SELECT greatest(\
     coalesce((SELECT max(id) FROM webhook_events), 0), \
     (SELECT horizon FROM feed_horizon WHERE id = 1))";

/// Never a row at or below the horizon: pruned (or passed), even if kept
/// for a pending delivery.
const EVENTS_AFTER: &str = "SELECT id, type, body, match_tags, match_author \
     FROM webhook_events \
     WHERE id > greatest($1, (SELECT horizon FROM feed_horizon WHERE id = 1)) \
     ORDER BY id LIMIT $2";

const FEED_BOUNDS: &str = "SELECT h.horizon, \
     (SELECT min(id) FROM webhook_events WHERE id > h.horizon) \
     FROM feed_horizon h WHERE h.id = 1";

const MOVE_HORIZON: &str = "UPDATE feed_horizon SET horizon = greatest(horizon, $1) WHERE id = 1";

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
     ORDER BY e.created_at LIMIT $2) RETURNING id";

/// Records the event of a change to `article` inside the caller's
/// transaction, after taking `FEED_LOCK` (see the module's docs), with one
/// delivery per live URL of `outbox`. `tags_before`: the article's tags
/// before an update that changed them.
pub(super) fn record_event<C: GenericClient>(
    db: &mut Db<'_, C>,
    outbox: &Outbox,
    kind: EventType,
    at: i64,
    article: &Article,
    tags_before: Option<&[String]>,
) -> Result<Recorded, StoreError> {
    db.execute(TAKE_FEED_LOCK, &[&FEED_LOCK])?;
    let body = event_body(kind, at, article);
    let (tags, author) = match_keys(article, tags_before);
    let urls = outbox.live_urls();
    // Only a delivery needs a `webhook-id`.
    let webhook_id = (!urls.is_empty()).then(new_message_id);
    let seq: i64 = db
        .query_one(
            INSERT_EVENT,
            &[&webhook_id, &kind.as_str(), &at, &body, &tags, &author],
        )?
        .get(0);
    if !urls.is_empty() {
        db.execute(INSERT_DELIVERIES, &[&seq, &urls, &at])?;
    }
    Ok(Recorded {
        seq,
        deliveries: !urls.is_empty(),
    })
}

impl Events for PgStore {
    fn events_after(&self, after: i64, limit: usize) -> Result<EventsRead, StoreError> {
        self.read_snapshot(|db| {
            let newest: i64 = db.query_one(FEED_POSITION, &[])?.get(0);
            let bounds = db.query_one(FEED_BOUNDS, &[])?;
            let events = db
                .query(EVENTS_AFTER, &[&after, &(limit as i64)])?
                .iter()
                .map(|row| {
                    Ok(Arc::new(StoredEvent {
                        seq: row.try_get(0)?,
                        kind: row.try_get(1)?,
                        body: row.try_get(2)?,
                        tags: split_tags(row.try_get(3)?),
                        author: row.try_get(4)?,
                    }))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok(EventsRead {
                events,
                newest,
                horizon: bounds.try_get(0)?,
                oldest: bounds.try_get(1)?,
            })
        })
    }

    fn feed_position(&self) -> Result<i64, StoreError> {
        self.read(|db| Ok(db.query_one(FEED_POSITION, &[])?.try_get(0)?))
    }

    fn prune_events(&self, before: i64, batch: usize) -> Result<usize, StoreError> {
        self.write(|db| {
            let pruned: Vec<i64> = db
                .query(PRUNE, &[&before, &(batch as i64)])?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            if let Some(last) = pruned.iter().max() {
                db.execute(MOVE_HORIZON, &[last])?;
            }
            Ok(pruned.len())
        })
    }
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
}
