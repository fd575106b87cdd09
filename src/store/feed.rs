//! The change feed's news, within one process: the newest `seq` known to be
//! committed, and one condition variable on which every stream and long
//! poll waits. Writes publish their event's `seq` once it has committed; a
//! watcher (`feed::Watcher`) publishes what other processes committed. No
//! stream polls the database while nothing changes.
//!
//! When something does change, every stream at the tip of the feed wants
//! the same new events: `Tail` keeps the newest ones read, so that one
//! database read serves them all.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{EventsRead, StoreError, StoredEvent};

/// Most events `Tail` keeps, and most bytes of their bodies.
const TAIL_EVENTS: usize = 1024;
const TAIL_BYTES: usize = 4 << 20;

/// See the module's docs.
#[derive(Debug, Default)]
pub struct Feed {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    newest: i64,
    closed: bool,
}

impl Feed {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Events up to `seq` have committed: wakes every waiter if that is news.
    pub fn publish(&self, seq: i64) {
        let mut state = self.lock();
        if seq > state.newest {
            state.newest = seq;
            self.changed.notify_all();
        }
    }

    /// Waits until an event after `seq` is published, the feed closes, or
    /// `timeout` passes; returns the newest `seq` published, and whether the
    /// feed is closed.
    pub fn wait_past(&self, seq: i64, timeout: Duration) -> (i64, bool) {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.newest <= seq && !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        (state.newest, state.closed)
    }

    /// The server is stopping: wakes every waiter, now and from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }
}

/// The newest events read from the database, shared by this process's
/// followers. Every event with a `seq` in `(after, upto]` is in `events`:
/// events commit in `seq` order (see the backends' outbox), so once a
/// snapshot has seen `upto`, no event at or before it can appear later.
#[derive(Debug, Default)]
pub struct Tail {
    cached: Mutex<Cached>,
    /// Moved on by `clear`, which then need not wait for the lock (held
    /// across a database read): what is kept from an older epoch is
    /// dropped at the next read.
    epoch: AtomicU64,
}

#[derive(Debug, Default)]
struct Cached {
    epoch: u64,
    after: i64,
    upto: i64,
    events: VecDeque<Arc<StoredEvent>>,
    bytes: usize,
}

impl Tail {
    /// What `fetch(after, limit)` (`Events::events_after`) would read, from
    /// memory when it can. A follower at the tip reads for everyone while
    /// the others wait for it; one further behind reads the database alone.
    pub fn read(
        &self,
        after: i64,
        limit: usize,
        fetch: impl FnOnce(i64, usize) -> Result<EventsRead, StoreError>,
    ) -> Result<EventsRead, StoreError> {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if cached.epoch != epoch {
            *cached = Cached {
                epoch,
                ..Cached::default()
            };
        }
        if (cached.after..cached.upto).contains(&after) {
            return Ok(cached.since(after, limit));
        }
        if after < cached.after {
            drop(cached);
            return fetch(after, limit);
        }
        let read = fetch(after, limit)?;
        // Only what is complete is kept: nothing pruned past `after`, and
        // `after` not beyond what has committed (events up to it may still
        // come); and nothing read while a prune was clearing.
        let current = self.epoch.load(Ordering::Acquire) == epoch;
        if current && read.horizon <= after && after <= read.newest {
            cached.extend(after, &read, limit);
        }
        Ok(read)
    }

    /// Forgets every event kept: some were pruned from the database, and a
    /// follower before them must hear it (a reset), not be served them.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

impl Cached {
    /// Up to `limit` events after `after`, which is in `(after, upto]`.
    fn since(&self, after: i64, limit: usize) -> EventsRead {
        let start = self.events.partition_point(|event| event.seq <= after);
        let events: Vec<_> = self.events.range(start..).take(limit).cloned().collect();
        EventsRead {
            // What a database read would say as far as a follower cares:
            // nothing after `after` has been pruned.
            newest: self.upto,
            horizon: self.after,
            oldest: self.events.front().map(|event| event.seq),
            events,
        }
    }

    /// Adds a read of what follows `after` (at or past `upto`).
    fn extend(&mut self, after: i64, read: &EventsRead, limit: usize) {
        if after != self.upto {
            self.events.clear();
            self.bytes = 0;
            self.after = after;
        }
        self.upto = match read.events.last() {
            // A full batch: complete only up to its last event.
            Some(last) if read.events.len() == limit => last.seq,
            _ => read.newest,
        };
        for event in &read.events {
            self.bytes += event.body.len();
            self.events.push_back(Arc::clone(event));
        }
        while self.events.len() > TAIL_EVENTS || self.bytes > TAIL_BYTES {
            let Some(oldest) = self.events.pop_front() else {
                break;
            };
            self.bytes -= oldest.body.len();
            self.after = oldest.seq;
        }
        if self.events.is_empty() {
            self.after = self.upto;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn a_waiter_wakes_on_news_and_on_close_only() {
        let feed = Arc::new(Feed::default());
        feed.publish(5);
        assert_eq!(feed.wait_past(4, Duration::from_secs(5)), (5, false));
        let started = Instant::now();
        assert_eq!(feed.wait_past(5, Duration::from_millis(50)), (5, false));
        assert!(started.elapsed() >= Duration::from_millis(50));
        let publisher = Arc::clone(&feed);
        let news = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            publisher.publish(4); // old news: nobody wakes for it
            publisher.publish(7);
        });
        assert_eq!(feed.wait_past(5, Duration::from_secs(5)), (7, false));
        news.join().unwrap();
        feed.close();
        assert_eq!(feed.wait_past(7, Duration::from_secs(5)), (7, true));
    }

    /// A database of events 1..=newest, none pruned, that counts its reads.
    struct Database {
        newest: i64,
        reads: std::cell::Cell<u32>,
    }

    impl Database {
        fn new(newest: i64) -> Database {
            Database {
                newest,
                reads: Default::default(),
            }
        }

        fn fetch(&self, after: i64, limit: usize) -> Result<EventsRead, StoreError> {
            self.reads.set(self.reads.get() + 1);
            let event = |seq| {
                Arc::new(StoredEvent {
                    seq,
                    kind: "article.created".into(),
                    body: "{}".into(),
                    tags: Vec::new(),
                    author: None,
                })
            };
            Ok(EventsRead {
                events: (after + 1..=self.newest).take(limit).map(event).collect(),
                newest: self.newest,
                horizon: 0,
                oldest: Some(1),
            })
        }
    }

    fn seqs(read: &EventsRead) -> Vec<i64> {
        read.events.iter().map(|event| event.seq).collect()
    }

    #[test]
    fn followers_at_the_tip_share_one_read() {
        let tail = Tail::default();
        let db = Database::new(5);
        let read = |after, limit| seqs(&tail.read(after, limit, |a, l| db.fetch(a, l)).unwrap());
        assert_eq!(read(3, 100), [4, 5]);
        assert_eq!(db.reads.get(), 1);
        // (3, 5] is known now: a follower at 3 or 4 reads memory.
        assert_eq!(read(3, 100), [4, 5]);
        assert_eq!(read(4, 1), [5]);
        assert_eq!(db.reads.get(), 1);
        // Behind what is kept: the database.
        assert_eq!(read(1, 100), [2, 3, 4, 5]);
        assert_eq!(db.reads.get(), 2);
        // Caught up: news is read once, and extends what is kept.
        let db = Database::new(7);
        let read = |after, limit| seqs(&tail.read(after, limit, |a, l| db.fetch(a, l)).unwrap());
        assert_eq!(read(5, 100), [6, 7]);
        assert_eq!(read(3, 100), [4, 5, 6, 7]);
        assert_eq!(db.reads.get(), 1);
    }

    #[test]
    fn only_complete_ranges_are_kept() {
        let tail = Tail::default();
        // Beyond the newest: events up to 9 may still commit.
        let early = Database::new(5);
        assert!(tail
            .read(9, 100, |a, l| early.fetch(a, l))
            .unwrap()
            .events
            .is_empty());
        let later = Database::new(9);
        let read = tail.read(6, 100, |a, l| later.fetch(a, l)).unwrap();
        assert_eq!(seqs(&read), [7, 8, 9]);
        assert_eq!(later.reads.get(), 1, "6 was not taken as known");
        // A full batch is complete only up to its last event.
        let tail = Tail::default();
        let db = Database::new(10);
        let read = |after, limit| seqs(&tail.read(after, limit, |a, l| db.fetch(a, l)).unwrap());
        assert_eq!(read(0, 3), [1, 2, 3]);
        assert_eq!(read(2, 100), [3]);
        assert_eq!(read(3, 100), (4..=10).collect::<Vec<_>>());
        assert_eq!(db.reads.get(), 2);
    }

    #[test]
    fn what_is_kept_is_bounded_and_cleared_by_pruning() {
        let tail = Tail::default();
        let newest = TAIL_EVENTS as i64 + 10;
        let db = Database::new(newest);
        let read = |after, limit| seqs(&tail.read(after, limit, |a, l| db.fetch(a, l)).unwrap());
        assert_eq!(read(0, 2000).len(), newest as usize);
        // The oldest ten went: a follower there reads the database.
        assert_eq!(read(10, 5).len(), 5);
        assert_eq!(db.reads.get(), 1);
        assert_eq!(read(9, 1), [10]);
        assert_eq!(db.reads.get(), 2);
        tail.clear();
        assert_eq!(read(10, 1), [11]);
        assert_eq!(db.reads.get(), 3, "cleared");
    }

    #[test]
    fn a_read_that_a_prune_overtook_is_not_kept() {
        let tail = Tail::default();
        let db = Database::new(5);
        // The prune clears while the read is at the database (no deadlock:
        // clearing takes no lock).
        let read = tail.read(3, 100, |a, l| {
            tail.clear();
            db.fetch(a, l)
        });
        assert_eq!(seqs(&read.unwrap()), [4, 5]);
        let again = tail.read(3, 100, |a, l| db.fetch(a, l)).unwrap();
        assert_eq!(seqs(&again), [4, 5]);
        assert_eq!(db.reads.get(), 2, "read again, not from memory");
    }
}
