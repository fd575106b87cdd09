//! The change feed's watcher: one thread per process that keeps the feed's
//! news current and its history bounded.
//!
//! - Every `WATCH_EVERY` it reads the newest `seq` in the database and
//!   publishes it (`store::Feed`): writes made in this process publish
//!   their own at once, this catches the others' (replicas on one
//!   PostgreSQL database, an import), within a second.
//! - Every `PRUNE_EVERY` it deletes the events older than
//!   `--events-retention` (none with a webhook delivery still pending), a
//!   batch per short transaction, and the horizon moves past them.

use std::io;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::store::Store;
use crate::util::time::now_millis;

/// How often the newest `seq` is read from the database.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How often expired events are pruned: an event goes within 10 s of
/// expiring (the contract), with time to spare for a slow database.
const PRUNE_EVERY: Duration = Duration::from_secs(5);
/// Events deleted per pruning transaction (each one short).
const PRUNE_BATCH: usize = 500;

/// The running watcher.
pub struct Watcher {
    thread: JoinHandle<()>,
    stop: Arc<(Mutex<bool>, Condvar)>,
}

impl Watcher {
    /// Starts watching `store`, keeping events for `retention`.
    pub fn start(store: Arc<Store>, retention: Duration) -> io::Result<Watcher> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stopped = Arc::clone(&stop);
        let thread = thread::Builder::new()
            .name("feed".into())
            .spawn(move || watch(&store, retention, &stopped))?;
        Ok(Watcher { thread, stop })
    }

    /// Stops the watcher and waits for it (at most one pruning batch).
    pub fn stop(self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        let _ = self.thread.join();
    }
}

fn watch(store: &Store, retention: Duration, stop: &(Mutex<bool>, Condvar)) {
    let retention_ms = retention.as_millis().min(i64::MAX as u128) as i64;
    let mut next_prune = Instant::now();
    loop {
        if let Err(err) = store.feed_position() {
            log::warn!("change feed: reading the newest event failed: {err}");
        }
        if Instant::now() >= next_prune {
            prune(store, now_millis().saturating_sub(retention_ms), stop);
            next_prune = Instant::now() + PRUNE_EVERY;
        }
        let (stopped, wake) = stop;
        let guard = stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = wake
            .wait_timeout_while(guard, WATCH_EVERY, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        if *guard {
            return;
        }
    }
}

/// Deletes the events older than `before`, a batch at a time. A long
/// backlog neither delays the news (published between batches) nor a stop.
fn prune(store: &Store, before: i64, stop: &(Mutex<bool>, Condvar)) {
    loop {
        match store.prune_events(before, PRUNE_BATCH) {
            Ok(n) if n == PRUNE_BATCH => {
                if *stop.0.lock().unwrap_or_else(PoisonError::into_inner) {
                    return;
                }
                if let Err(err) = store.feed_position() {
                    log::warn!("change feed: reading the newest event failed: {err}");
                }
            }
            Ok(_) => return,
            Err(err) => {
                log::warn!("change feed: pruning old events failed: {err}");
                return;
            }
        }
    }
}
