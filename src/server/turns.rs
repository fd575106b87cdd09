//! Turns: at most `--workers` requests are worked on at once, by a pool of
//! more threads than that.
//!
//! A worker thread takes a turn before it takes a request off the queue,
//! and keeps it from one request to the next. A thread about to wait for
//! something other than the CPU (its write's group commit, see
//! `store::sqlite::batch`) gives its turn back first, so that another
//! thread takes the next request meanwhile; it answers its own request
//! once the wait is over, and takes a turn again before the next.
//!
//! Why not simply more workers: the turns keep the number of requests
//! being worked on, and so every latency, where `--workers` puts it (more
//! workers on one core made the p99 of `GET /articles/{id}` several times
//! worse), while the threads waiting on a commit let that commit carry
//! more writes (figures in `docs/performance.md`).

use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The turns of one worker pool.
pub struct Turns {
    free: Mutex<usize>,
    given_back: Condvar,
}

thread_local! {
    /// The pool whose turn this thread holds, while it holds one.
    static HELD: RefCell<Option<Arc<Turns>>> = const { RefCell::new(None) };
}

impl Turns {
    /// A pool of `count` turns.
    pub fn new(count: usize) -> Arc<Turns> {
        Arc::new(Turns {
            free: Mutex::new(count),
            given_back: Condvar::new(),
        })
    }

    /// Makes sure this thread holds a turn of this pool: at once if it
    /// kept the one it had, otherwise once one is free.
    pub fn take(self: &Arc<Self>) {
        if HELD.with(|held| held.borrow().is_some()) {
            return;
        }
        let mut free = self.lock();
        while *free == 0 {
            free = self
                .given_back
                .wait(free)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *free -= 1;
        drop(free);
        HELD.with(|held| *held.borrow_mut() = Some(Arc::clone(self)));
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        // A count is consistent at every unlock.
        self.free
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Gives back this thread's turn, if it holds one: called before a wait
/// that is not for the CPU, and by a worker that stops.
pub fn give_back() {
    if let Some(turns) = HELD.with(|held| held.borrow_mut().take()) {
        *turns.lock() += 1;
        turns.given_back.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn a_turn_is_kept_until_given_back() {
        let turns = Turns::new(1);
        turns.take();
        turns.take(); // kept: does not wait for itself
        let (taken, took) = mpsc::channel();
        let other = {
            let turns = Arc::clone(&turns);
            thread::spawn(move || {
                turns.take();
                taken.send(()).unwrap();
                give_back();
            })
        };
        assert!(
            took.recv_timeout(Duration::from_millis(100)).is_err(),
            "a second thread took the only turn while the first held it"
        );
        give_back();
        took.recv_timeout(Duration::from_secs(5))
            .expect("the turn given back was never taken");
        other.join().unwrap();
        give_back(); // holds none now: nothing happens
        assert_eq!(*turns.lock(), 1);
    }

    #[test]
    fn no_more_threads_hold_turns_than_there_are() {
        let turns = Turns::new(3);
        let (holding, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (turns, holding, most) =
                    (Arc::clone(&turns), Arc::clone(&holding), Arc::clone(&most));
                thread::spawn(move || {
                    for _ in 0..50 {
                        turns.take();
                        let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        holding.fetch_sub(1, Ordering::SeqCst);
                        give_back();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 3);
        assert_eq!(*turns.lock(), 3);
    }
}
