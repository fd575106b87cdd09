//! Who works on a request: its own connection thread for a read
//! (`Inline`), otherwise a worker of the pool, which take turns (see
//! `turns`).

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};

use tiny_http_fork::util::{MessageQueueSender, MessagesQueue};
use tiny_http_fork::{Method, Refusal, Request};

use super::connection::{self, Answered, Job};
use super::exchange::{answer_refusal, handle, writes};
use super::turns::{self, Turns};
use crate::http::error::ApiError;
use crate::http::App;

/// Worker threads per turn (per `--workers`): the threads beyond the
/// turns are those that can wait on a group commit while others work, so
/// that up to this many times `--workers` writes can share one commit
/// (more threads, more writes per commit: figures in
/// `docs/performance.md`). Only the turns' threads start with the server;
/// the others as writes need them (see `Workers`), since starting them all
/// at once shows in the cold start.
const THREADS_PER_TURN: usize = 8;

/// Most worker threads beyond the turns, for large `--workers`.
const MAX_WAITING_THREADS: usize = 64;

/// Most open connections at which reads are still answered on their
/// connection threads (see `Inline`). A thread that has answered a read
/// keeps more of its stack resident than one that only parsed; connections
/// beyond this many hand their requests to the workers, so at most this
/// many threads carry the deeper stacks (512 KiB in all).
const MAX_INLINE_CONNECTIONS: usize = 64;

/// Which requests a connection thread answers itself: reads (`GET`,
/// `HEAD`), while at most `MAX_INLINE_CONNECTIONS` connections are open and
/// fewer than `--workers` reads are being answered that way. Everything
/// else goes to the workers.
///
/// A read answered by its connection thread saves the hand-over to a
/// worker: a thread switch per request, the largest single cost of a `GET`
/// (see `docs/performance.md`). Writes always go to the
/// workers, whose turns let them wait on a group commit (`turns`). The
/// bound on reads at once is taken without waiting: a read that finds every
/// slot busy is queued instead, so at most twice `--workers` requests are
/// worked on at once.
pub(super) struct Inline {
    /// Weak: connection threads outlive the server, and the database must
    /// close when it stops (SQLite then removes its WAL file).
    pub(super) app: Weak<App>,
    /// Open connections.
    pub(super) open: AtomicUsize,
    /// Reads being answered on connection threads: at most `--workers`.
    pub(super) busy: AtomicUsize,
    /// Change-feed requests (streams and long polls) being answered on
    /// connection threads: never on a worker, since they wait.
    pub(super) following: AtomicUsize,
    /// Set by `Server::wait` before its last look at the queue: from then
    /// on nothing takes a request from it, so none may be queued. Checked
    /// and set under the lock, so no request slips in between.
    pub(super) stopped: Mutex<bool>,
}

impl Inline {
    /// Stops requests from being queued for the workers (see `stopped`).
    pub(super) fn stop_queueing(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
    }

    /// Counts a connection open until the returned slot is dropped;
    /// returns how many were open before it.
    pub(super) fn open(self: &Arc<Self>) -> (usize, OpenSlot) {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        (before, OpenSlot(Arc::clone(self)))
    }
}

/// One open connection, counted in `Inline::open` until dropped.
pub(super) struct OpenSlot(Arc<Inline>);

impl Drop for OpenSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl connection::Answer for Inline {
    fn queue(&self, queue: &MessageQueueSender<Job>, job: Job) -> bool {
        let stopped = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        if *stopped {
            // Taking the writer and dropping it answers nothing; a request
            // dropped whole would be answered 500 by tiny_http.
            drop(job.request.into_writer());
            return false;
        }
        let _ = queue.push(job);
        true
    }

    fn refuse(&self, refusal: Refusal, writer: Box<dyn Write + Send>) {
        if let Some(app) = self.app.upgrade() {
            let error = ApiError::Refused {
                status: refusal.status,
                detail: refusal.reason,
            };
            answer_refusal(&app, error, writer);
        }
    }

    fn answer(&self, request: Request) -> Answered {
        let read = matches!(request.method(), Method::Get | Method::Head);
        if read && is_feed(request.url()) {
            return self.follow(request);
        }
        if !read || self.open.load(Ordering::Acquire) > MAX_INLINE_CONNECTIONS {
            return Answered::NotHere(request);
        }
        // Counted before the shutdown check: `Server::wait` sets the flag
        // and then waits for `busy` to drain, so it never misses a read that
        // goes ahead. After the signal the queue answers 503.
        let (busy, slot) = Counted::take(&self.busy);
        let app = match self.app.upgrade() {
            Some(app) if busy < app.config.workers && !app.shutting_down() => app,
            _ => return Answered::NotHere(request),
        };
        let reuse = handle(&app, request);
        // The App first: `Server::wait` returns once `busy` drains, and the
        // database closes only when the last reference to the App goes.
        drop(app);
        drop(slot);
        // A connection whose client sends its next request at once never
        // blocks on reading it, so connection threads answering their own
        // reads would each keep the CPU for a whole scheduler slice, and
        // the other connections wait (the p99 grew several times over at
        // 32 connections on one core). Yielding after each answer serves the
        // connections in turn, one request each.
        thread::yield_now();
        Answered::Here(reuse)
    }
}

/// Whether a request target is the change feed, `/events` with or without
/// a query.
fn is_feed(target: &str) -> bool {
    target
        .strip_prefix("/events")
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('?'))
}

impl Inline {
    /// Answers a change-feed request here, whatever the other reads: a
    /// stream or a long poll waits, and must not hold a worker or a read
    /// slot meanwhile.
    fn follow(&self, request: Request) -> Answered {
        let (_, slot) = Counted::take(&self.following);
        let app = match self.app.upgrade() {
            Some(app) if !app.shutting_down() => app,
            _ => return Answered::NotHere(request),
        };
        let reuse = handle(&app, request);
        drop(app);
        drop(slot);
        Answered::Here(reuse)
    }
}

/// One of a count (`Inline::open`, `Inline::busy`), given back when dropped.
struct Counted<'a>(&'a AtomicUsize);

impl<'a> Counted<'a> {
    /// Adds one to `count`; returns what it was before, and the one added.
    fn take(count: &'a AtomicUsize) -> (usize, Counted<'a>) {
        (count.fetch_add(1, Ordering::AcqRel), Counted(count))
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The worker threads: one per turn from the start, more as writes need
/// them, up to `THREADS_PER_TURN` per turn (`MAX_WAITING_THREADS` beyond
/// the turns at most). A write that finds no other worker idle starts
/// one, so that when the write gives its turn back to wait on its group
/// commit, a thread is there to take the turn and the next request.
pub(super) struct Workers {
    pub(super) app: Arc<App>,
    queue: Arc<MessagesQueue<Job>>,
    turns: Arc<Turns>,
    /// Workers waiting for a turn or a request.
    idle: AtomicUsize,
    threads: Mutex<Threads>,
}

struct Threads {
    handles: Vec<JoinHandle<()>>,
    /// How many may run: 0 once shutdown has counted them, the number
    /// running once one could not start.
    most: usize,
}

impl Workers {
    /// Starts one worker per turn.
    pub(super) fn start(
        app: &Arc<App>,
        queue: &Arc<MessagesQueue<Job>>,
    ) -> io::Result<Arc<Workers>> {
        let turns = app.config.workers;
        let workers = Arc::new(Workers {
            app: Arc::clone(app),
            queue: Arc::clone(queue),
            turns: Turns::new(turns),
            idle: AtomicUsize::new(0),
            threads: Mutex::new(Threads {
                handles: Vec::new(),
                most: turns + (turns * (THREADS_PER_TURN - 1)).min(MAX_WAITING_THREADS),
            }),
        });
        {
            let mut threads = workers.lock();
            for _ in 0..turns {
                workers.spawn(&mut threads)?;
            }
        }
        Ok(workers)
    }

    /// Starts one more worker, unless as many as may run already do.
    fn add(self: &Arc<Self>) {
        let mut threads = self.lock();
        if threads.handles.len() < threads.most {
            if let Err(err) = self.spawn(&mut threads) {
                threads.most = threads.handles.len();
                log::warn!(
                    "could not start another worker ({err}); going on with {}",
                    threads.most
                );
            }
        }
    }

    fn spawn(self: &Arc<Self>, threads: &mut Threads) -> io::Result<()> {
        let workers = Arc::clone(self);
        let handle = thread::Builder::new()
            .name(format!("worker-{}", threads.handles.len()))
            .spawn(move || workers.work())?;
        threads.handles.push(handle);
        Ok(())
    }

    /// A worker: in its turn, takes requests off the queue until it is
    /// unblocked.
    fn work(self: &Arc<Self>) {
        loop {
            self.idle.fetch_add(1, Ordering::SeqCst);
            self.turns.take();
            let job = self.queue.pop();
            let others_idle = self.idle.fetch_sub(1, Ordering::SeqCst) > 1;
            let Ok(Some(Job { request, done })) = job else {
                break;
            };
            if !others_idle && writes(request.method()) {
                self.add();
            }
            done.send(handle(&self.app, request));
        }
        turns::give_back();
    }

    /// The workers started; none start after this (shutdown).
    pub(super) fn close(&self) -> Vec<JoinHandle<()>> {
        let mut threads = self.lock();
        threads.most = 0;
        std::mem::take(&mut threads.handles)
    }

    fn lock(&self) -> MutexGuard<'_, Threads> {
        // Consistent at every unlock.
        self.threads
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
