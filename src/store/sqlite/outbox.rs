//! Events SQL: every change's event, written with the change it reports;
//! the change feed's reads and pruning; the webhook dispatcher's reads and
//! short writes of delivery state.

use std::sync::Arc;

use rusqlite::{params, Connection};

use super::SqliteStore;
use crate::model::article::Article;
use crate::model::event::{event_body, new_message_id, EventType};
use crate::store::outbox::{match_keys, split_tags};
use crate::store::{Deliveries, DeliveryEnd, PendingDelivery, StoreError};
use crate::store::{Events, EventsRead, Outbox, Recorded, StoredEvent};

/// The id, the change's `seq`, is SQLite's rowid: one past the largest id
/// in the table. Pruning never deletes the row with the largest id (see
/// `DELETE_EVENT`), so ids are never reused; one writer, so they are in commit
/// order.
const INSERT_EVENT: &str = "INSERT INTO webhook_events \
     (webhook_id, type, created_at, body, match_tags, match_author) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// The newest `seq` committed, or passed over if none is kept after it.
pub(super) const FEED_POSITION: &str = "SELECT max(\
     coalesce((SELECT max(id) FROM webhook_events), 0), \
     (SELECT horizon FROM feed_horizon WHERE id = 1))";

/// Never a row at or below the horizon: pruned, even if still in the table.
const EVENTS_AFTER: &str = "SELECT id, type, body, match_tags, match_author \
     FROM webhook_events \
     WHERE id > max(?1, (SELECT horizon FROM feed_horizon WHERE id = 1)) \
     ORDER BY id LIMIT ?2";

/// Rows at or below the horizon are pruned, even one still in the table.
const FEED_BOUNDS: &str = "SELECT h.horizon, \
     (SELECT min(id) FROM webhook_events WHERE id > h.horizon) \
     FROM feed_horizon h WHERE h.id = 1";

/// Of the oldest events none of whose deliveries is pending (a batch, in id
/// order, which is commit order; not the largest id once pruned, see
/// `DELETE_EVENT`), those older than `?1`. There is no index by age: ages
/// follow ids (within the few milliseconds a group commit spans); a young
/// event among them (a clock that stepped back) is passed over, not a stop.
const EXPIRED: &str = "SELECT id FROM \
     (SELECT e.id, e.created_at FROM webhook_events e \
      WHERE NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
          WHERE d.event_id = e.id AND d.state = 'pending') \
        AND (e.id > (SELECT horizon FROM feed_horizon WHERE id = 1) \
          OR e.id < (SELECT max(id) FROM webhook_events)) \
      ORDER BY e.id LIMIT ?2) \
     WHERE created_at <= ?1";

/// Pruning deletes an expired event's row, unless it has the largest id:
/// that row stays, below the horizon, so that the next id is still new
/// (`INSERT_EVENT`); only its deliveries go. A later prune deletes it.
const DELETE_EVENT: &str =
    "DELETE FROM webhook_events WHERE id = ?1 AND id < (SELECT max(id) FROM webhook_events)";
const DELETE_DELIVERIES: &str = "DELETE FROM webhook_deliveries WHERE event_id = ?1";

pub(super) const MOVE_HORIZON: &str =
    "UPDATE feed_horizon SET horizon = max(horizon, ?1) WHERE id = 1";

/// Due at once: the dispatcher is woken right after the commit.
const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (event_id, url, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?3)";

const PENDING_URLS: &str = "SELECT DISTINCT url FROM webhook_deliveries WHERE state = 'pending'";

/// The pending deliveries of one URL due by `?2`, soonest first.
const DUE: &str = "SELECT d.event_id, e.webhook_id, e.body, d.attempts, d.created_at \
     FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id \
     WHERE d.url = ?1 AND d.state = 'pending' AND d.next_attempt_at <= ?2 \
     ORDER BY d.next_attempt_at LIMIT ?3";

/// A claim's lease, or its release.
const SET_DUE: &str = "UPDATE webhook_deliveries SET next_attempt_at = ?3 \
     WHERE event_id = ?1 AND url = ?2 AND state = 'pending'";

const NEXT_DUE: &str =
    "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE url = ?1 AND state = 'pending'";

/// Every outcome write is conditional on `pending`: once a delivery is
/// done (say, dropped by a 410), a late outcome cannot revive it.
const FINISH: &str = "UPDATE webhook_deliveries SET state = ?3, attempts = attempts + 1, \
     done_at = ?4 WHERE event_id = ?1 AND url = ?2 AND state = 'pending'";

const RETRY: &str = "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = ?3 \
     WHERE event_id = ?1 AND url = ?2 AND state = 'pending'";

const DROP_URL: &str = "UPDATE webhook_deliveries SET state = 'gone', done_at = ?2 \
     WHERE url = ?1 AND state = 'pending'";

const BACKLOG: &str =
    "SELECT count(*), min(created_at) FROM webhook_deliveries WHERE state = 'pending'";

/// Records the event of a change to `article` inside the caller's write
/// transaction, with one delivery per live URL of `outbox`. Its id is its
/// `seq`: one writer, so ids are in commit order. `tags_before`: the
/// article's tags before an update that changed them.
pub(super) fn record_event(
    conn: &Connection,
    outbox: &Outbox,
    kind: EventType,
    at: i64,
    article: &Article,
    tags_before: Option<&[String]>,
) -> Result<Recorded, StoreError> {
    let body = event_body(kind, at, article);
    let (tags, author) = match_keys(article, tags_before);
    let urls = outbox.live_urls();
    // Only a delivery needs a `webhook-id`.
    let webhook_id = (!urls.is_empty()).then(new_message_id);
    conn.prepare_cached(INSERT_EVENT)?.execute(params![
        webhook_id,
        kind.as_str(),
        at,
        body,
        tags,
        author
    ])?;
    let seq = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(INSERT_DELIVERY)?;
    for url in &urls {
        insert.execute(params![seq, url, at])?;
    }
    Ok(Recorded {
        seq,
        deliveries: !urls.is_empty(),
    })
}

impl Events for SqliteStore {
    fn events_after(&self, after: i64, limit: usize) -> Result<EventsRead, StoreError> {
        let mut conn = self.read()?;
        let tx = conn.transaction()?;
        let newest: i64 = tx
            .prepare_cached(FEED_POSITION)?
            .query_row([], |row| row.get(0))?;
        let (horizon, oldest): (i64, Option<i64>) = tx
            .prepare_cached(FEED_BOUNDS)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let events = tx
            .prepare_cached(EVENTS_AFTER)?
            .query_map(params![after, limit as i64], |row| {
                Ok(Arc::new(StoredEvent {
                    seq: row.get(0)?,
                    kind: row.get(1)?,
                    body: row.get(2)?,
                    tags: split_tags(row.get(3)?),
                    author: row.get(4)?,
                }))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        tx.finish()?;
        Ok(EventsRead {
            events,
            newest,
            horizon,
            oldest,
        })
    }

    fn feed_position(&self) -> Result<i64, StoreError> {
        let conn = self.read()?;
        let newest = conn
            .prepare_cached(FEED_POSITION)?
            .query_row([], |row| row.get(0))?;
        Ok(newest)
    }

    fn prune_events(&self, before: i64, batch: usize) -> Result<usize, StoreError> {
        // Found on a reader, so that the usual case, nothing expired, takes
        // no write lock. What it finds stays expired: an event's deliveries
        // never become pending again.
        let expired = self
            .read()?
            .prepare_cached(EXPIRED)?
            .query_map(params![before, batch as i64], |row| row.get::<_, i64>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        let Some(last) = expired.last() else {
            return Ok(0);
        };
        self.short_write(|conn| {
            let mut delete_event = conn.prepare_cached(DELETE_EVENT)?;
            let mut delete_deliveries = conn.prepare_cached(DELETE_DELIVERIES)?;
            for id in &expired {
                if delete_event.execute([id])? == 0 {
                    delete_deliveries.execute([id])?;
                }
            }
            conn.prepare_cached(MOVE_HORIZON)?.execute([last])?;
            Ok(expired.len())
        })
    }
}

impl Deliveries for SqliteStore {
    fn pending_webhook_urls(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.read()?;
        let mut stmt = conn.prepare_cached(PENDING_URLS)?;
        let urls = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(urls)
    }

    fn claim_deliveries(
        &self,
        url: &str,
        limit: usize,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.short_write(|conn| {
            let due = conn
                .prepare_cached(DUE)?
                .query_map(params![url, now, limit as i64], |row| {
                    Ok(PendingDelivery {
                        event: row.get(0)?,
                        webhook_id: row.get(1)?,
                        body: row.get(2)?,
                        attempts: row.get(3)?,
                        created_at: row.get(4)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut lease = conn.prepare_cached(SET_DUE)?;
            for delivery in &due {
                lease.execute(params![delivery.event, url, lease_until])?;
            }
            Ok(due)
        })
    }

    fn next_delivery_due(&self, url: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.read()?;
        let due = conn
            .prepare_cached(NEXT_DUE)?
            .query_row([url], |row| row.get(0))?;
        Ok(due)
    }

    fn release_deliveries(&self, url: &str, events: &[i64], now: i64) -> Result<(), StoreError> {
        self.short_write(|conn| {
            let mut release = conn.prepare_cached(SET_DUE)?;
            for event in events {
                release.execute(params![event, url, now])?;
            }
            Ok(())
        })
    }

    fn finish_delivery(
        &self,
        event: i64,
        url: &str,
        end: DeliveryEnd,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.short_write(|conn| {
            conn.prepare_cached(FINISH)?
                .execute(params![event, url, end.as_str(), now])?;
            if end != DeliveryEnd::Gone {
                return Ok(0);
            }
            Ok(conn.prepare_cached(DROP_URL)?.execute(params![url, now])?)
        })
    }

    fn retry_delivery(&self, event: i64, url: &str, at: i64) -> Result<(), StoreError> {
        self.short_write(|conn| {
            conn.prepare_cached(RETRY)?
                .execute(params![event, url, at])?;
            Ok(())
        })
    }

    fn webhook_backlog(&self) -> Result<(u64, Option<i64>), StoreError> {
        let conn = self.read()?;
        let (count, oldest): (i64, Option<i64>) = conn
            .prepare_cached(BACKLOG)?
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok((count.max(0) as u64, oldest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::article::ArticleChange;
    use crate::store::Articles;

    const A: &str = "http://a/";
    const B: &str = "http://b/";

    fn outbox() -> Outbox {
        Outbox::new(vec![A.into(), B.into()])
    }

    fn change(title: &str) -> ArticleChange {
        ArticleChange {
            title: Some(title.into()),
            content: Some("c".into()),
            tags: Some(vec![]),
        }
    }

    fn count(store: &SqliteStore, sql: &str) -> i64 {
        store
            .read()
            .unwrap()
            .query_row(sql, [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn without_webhooks_events_are_recorded_for_the_feed_and_nothing_is_queued() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let none = Outbox::default();
        let mut tagged = change("a");
        tagged.tags = Some(vec!["x".into()]);
        let article = store.create_article(&tagged, None, &none).unwrap();
        store
            .update_article(article.id, &none, &mut |_| Ok::<_, StoreError>(change("b")))
            .unwrap();
        store
            .delete_article(article.id, &none, &mut |_| Ok::<_, StoreError>(()))
            .unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM webhook_deliveries"), 0);
        let read = store.events_after(0, 10).unwrap();
        let kinds: Vec<(i64, &str)> = read
            .events
            .iter()
            .map(|e| (e.seq, e.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (1, "article.created"),
                (2, "article.updated"),
                (3, "article.deleted")
            ]
        );
        // The update took the tag away: its event still matches a follower
        // of the tag, and so does the delete's (the tags as they were).
        assert_eq!(read.events[1].tags, ["x"]);
        assert_eq!(read.events[2].tags, Vec::<String>::new());
        let published = none.feed().wait_past(0, std::time::Duration::ZERO).0;
        assert_eq!(published, 3, "published after each commit");
        assert!(read.events[0]
            .body
            .starts_with(r#"{"type":"article.created","#));
    }

    #[test]
    fn every_change_queues_one_event_per_url() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let outbox = outbox();
        let article = store.create_article(&change("a"), None, &outbox).unwrap();
        store
            .update_article(article.id, &outbox, &mut |_| {
                Ok::<_, StoreError>(change("b"))
            })
            .unwrap();
        store
            .delete_article(article.id, &outbox, &mut |_| Ok::<_, StoreError>(()))
            .unwrap();
        let types: Vec<String> = {
            let conn = store.read().unwrap();
            let mut stmt = conn
                .prepare("SELECT type FROM webhook_events ORDER BY id")
                .unwrap();
            stmt.query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(
            types,
            ["article.created", "article.updated", "article.deleted"]
        );
        assert_eq!(store.webhook_backlog().unwrap().0, 6);
        assert_eq!(store.pending_webhook_urls().unwrap().len(), 2);
        // The update's event may be stamped a millisecond ahead of the clock
        // (`updated_at` always moves forward): claim as of a second later.
        let later = crate::util::time::now_millis() + 1000;
        let claimed = store.claim_deliveries(A, 10, later, later + 1000).unwrap();
        assert_eq!(claimed.len(), 3);
        let first = &claimed[0];
        assert!(
            first.body.starts_with(r#"{"type":"article.created","#),
            "{}",
            first.body
        );
        assert_eq!((first.attempts, first.created_at), (0, article.created_at));
    }

    #[test]
    fn a_claim_holds_deliveries_until_its_lease_ends_or_they_are_released() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let outbox = outbox();
        for title in ["a", "b"] {
            store.create_article(&change(title), None, &outbox).unwrap();
        }
        let now = crate::util::time::now_millis();
        let first = store.claim_deliveries(A, 1, now, now + 1000).unwrap();
        assert_eq!(first.len(), 1);
        let second = store.claim_deliveries(A, 10, now, now + 1000).unwrap();
        assert_eq!(second.len(), 1, "the claimed one is not claimed again");
        assert_ne!(first[0].event, second[0].event);
        assert!(store
            .claim_deliveries(A, 10, now, now + 1000)
            .unwrap()
            .is_empty());
        assert_eq!(store.next_delivery_due(A).unwrap(), Some(now + 1000));
        assert_eq!(
            store
                .claim_deliveries(A, 10, now + 1000, now + 2000)
                .unwrap()
                .len(),
            2,
            "leases ended"
        );
        store.release_deliveries(A, &[first[0].event], now).unwrap();
        let again = store.claim_deliveries(A, 10, now, now + 1000).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].event, first[0].event);
        assert_eq!(
            store
                .claim_deliveries(B, 10, now, now + 1000)
                .unwrap()
                .len(),
            2,
            "B's own"
        );
    }

    #[test]
    fn a_refused_change_queues_nothing() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let outbox = outbox();
        let article = store.create_article(&change("a"), None, &outbox).unwrap();
        let refused = store.delete_article(article.id, &outbox, &mut |_| {
            Err(StoreError::internal("no"))
        });
        assert!(refused.is_err());
        assert_eq!(count(&store, "SELECT count(*) FROM webhook_events"), 1);
    }

    #[test]
    fn outcomes_retry_finish_and_drop_a_gone_url() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let outbox = outbox();
        for title in ["a", "b", "c"] {
            store.create_article(&change(title), None, &outbox).unwrap();
        }
        let now = crate::util::time::now_millis();
        let due: Vec<i64> = store
            .claim_deliveries(A, 10, now, now)
            .unwrap()
            .iter()
            .map(|d| d.event)
            .collect();
        store.retry_delivery(due[0], A, i64::MAX / 2).unwrap();
        assert_eq!(store.next_delivery_due(A).unwrap(), Some(now));
        store
            .finish_delivery(due[1], A, DeliveryEnd::Delivered, 1)
            .unwrap();
        assert_eq!(
            store
                .finish_delivery(due[2], A, DeliveryEnd::Gone, 1)
                .unwrap(),
            1
        );
        assert_eq!(store.next_delivery_due(A).unwrap(), None);
        // A late outcome cannot revive a dropped delivery.
        store.retry_delivery(due[0], A, 0).unwrap();
        assert!(store.claim_deliveries(A, 10, now, now).unwrap().is_empty());
        assert_eq!(store.webhook_backlog().unwrap().0, 3, "B's three remain");
        let states = count(
            &store,
            "SELECT count(*) FROM webhook_deliveries WHERE url = 'http://a/' AND state = 'gone'",
        );
        assert_eq!(states, 2);
    }

    #[test]
    fn pruning_keeps_anything_pending_or_recent() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let outbox = outbox();
        store.create_article(&change("a"), None, &outbox).unwrap();
        let now = crate::util::time::now_millis();
        assert_eq!(store.prune_events(now + 1, 10).unwrap(), 0, "pending");
        for url in [A, B] {
            let event = store.claim_deliveries(url, 1, now, now).unwrap()[0].event;
            store
                .finish_delivery(event, url, DeliveryEnd::Delivered, now)
                .unwrap();
        }
        assert_eq!(store.prune_events(now - 1000, 10).unwrap(), 0, "recent");
        let before = store.events_after(0, 10).unwrap();
        assert_eq!(
            (before.horizon, before.oldest, before.newest),
            (0, Some(1), 1)
        );
        assert_eq!(store.prune_events(now + 1, 10).unwrap(), 1);
        assert_eq!(count(&store, "SELECT count(*) FROM webhook_deliveries"), 0);
        // The horizon moves past what was pruned; the position stays.
        let after = store.events_after(0, 10).unwrap();
        assert_eq!((after.horizon, after.oldest, after.newest), (1, None, 1));
        assert!(after.events.is_empty());
        assert_eq!(store.feed_position().unwrap(), 1);
        // With nothing kept, the next change still gets a new seq.
        store.create_article(&change("b"), None, &outbox).unwrap();
        let next = store.events_after(1, 10).unwrap();
        assert_eq!(next.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
    }

    fn ids(store: &SqliteStore) -> Vec<i64> {
        let conn = store.read().unwrap();
        let mut stmt = conn
            .prepare("SELECT id FROM webhook_events ORDER BY id")
            .unwrap();
        let ids = stmt.query_map([], |row| row.get(0)).unwrap();
        ids.collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn an_event_dated_ahead_does_not_hold_pruning_back() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let quiet = Outbox::new(Vec::new());
        for n in 0..4 {
            store
                .create_article(&change(&format!("n{n}")), None, &quiet)
                .unwrap();
        }
        let now = crate::util::time::now_millis();
        store
            .short_write(|conn| {
                let ahead = "UPDATE webhook_events SET created_at = ?1 WHERE id = 1";
                Ok(conn.execute(ahead, [now + 86_400_000])?)
            })
            .unwrap();
        assert_eq!(store.prune_events(now + 1, 10).unwrap(), 3);
        assert_eq!(ids(&store), [1, 4], "1 is young; 4 stays as the largest id");
        store
            .create_article(&change("later"), None, &quiet)
            .unwrap();
        let later = crate::util::time::now_millis() + 1000;
        // 4 goes for good, 5 is pruned and stays as the largest id.
        assert_eq!(store.prune_events(later, 10).unwrap(), 2);
        assert_eq!(ids(&store), [1, 5]);
    }

    #[test]
    fn pruning_walks_the_oldest_events_past_those_still_pending() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let outbox = Outbox::new(vec![A.into()]);
        store
            .create_article(&change("pending"), None, &outbox)
            .unwrap();
        let quiet = Outbox::new(Vec::new());
        for n in 0..5 {
            store
                .create_article(&change(&format!("n{n}")), None, &quiet)
                .unwrap();
        }
        let now = crate::util::time::now_millis();
        // Event 1 waits for its delivery; 2 to 6 go, two at a time.
        assert_eq!(store.prune_events(now + 1, 2).unwrap(), 2);
        assert_eq!(store.prune_events(now + 1, 2).unwrap(), 2);
        assert_eq!(store.prune_events(now + 1, 2).unwrap(), 1);
        // Left: the pending event, and the newest row, pruned but kept as
        // the largest id (the next one is then new).
        assert_eq!(ids(&store), [1, 6]);
        assert_eq!(store.events_after(6, 10).unwrap().horizon, 6);
        assert_eq!(store.prune_events(now + 1, 10).unwrap(), 0, "nothing more");
        store.create_article(&change("next"), None, &quiet).unwrap();
        let next = store.events_after(6, 10).unwrap();
        assert_eq!(next.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [7]);
        // Once 7 expires, 6 goes for good and 7 holds the largest id.
        let later = crate::util::time::now_millis() + 1000;
        assert_eq!(store.prune_events(later, 10).unwrap(), 2);
        assert_eq!(ids(&store), [1, 7]);
        assert_eq!(store.events_after(7, 10).unwrap().horizon, 7);
    }

    #[test]
    fn dispatcher_queries_read_their_indexes() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let conn = store.read().unwrap();
        for (sql, index) in [
            (DUE, "webhook_deliveries_due"),
            (NEXT_DUE, "webhook_deliveries_due"),
            (BACKLOG, "webhook_deliveries_backlog"),
            (PENDING_URLS, "webhook_deliveries_due"),
            // Walks the oldest ids (no sort), each checked by its deliveries'
            // primary key.
            (EXPIRED, "SEARCH d USING PRIMARY KEY (event_id=?)"),
        ] {
            let params = (1..=sql.matches('?').count()).map(|_| rusqlite::types::Value::Integer(1));
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let lines: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(lines.iter().any(|l| l.contains(index)), "{sql}: {lines:?}");
            assert!(
                !lines.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sql}: {lines:?}"
            );
        }
    }
}
