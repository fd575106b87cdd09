//! The change feed's news, within one process: the newest `seq` known to be
//! committed, and one condition variable on which every stream and long
//! poll waits. Writes publish their event's `seq` once it has committed; a
//! watcher (`feed::Watcher`) publishes what other processes committed. No
//! stream polls the database while nothing changes.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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
}
