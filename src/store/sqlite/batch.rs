//! Group commit.
//!
//! Every write needs the one writer connection. Writes that queue for it
//! while a transaction is open join that transaction, each in a savepoint of
//! its own (so one failing write does not undo the others), and the last
//! writer with nobody queued behind it commits for all. A commit per batch
//! instead of per write matters because each commit flushes the full-text
//! index and writes every dirty page to the WAL: under load that was two
//! thirds of the cost of a POST.
//!
//! On one core the writes rarely overlap by themselves, so a write about to
//! commit also looks for writes that are coming: requests that will
//! probably write (`Store::expect_write`, announced by the server for
//! POST, PUT, PATCH and DELETE) and are being worked on. While there are
//! any, it leaves the transaction open for them and waits, giving its
//! worker's turn to another request meanwhile (see `turns`); the last one
//! commits. A batch is held open for announced writes `MAX_HOLD` at most.
//!
//! Nobody is answered before the commit that makes their write durable:
//! `WriteBatch::finish` returns only after the batch committed, and an error
//! if it did not, so a failed commit fails every write in it.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Savepoint};

use super::articles::index_articles;
use super::{Pooled, SqliteStore, StoreError};

/// Most writes in one transaction, to bound the wait of the first one.
const MAX_BATCH: usize = 64;

/// Longest a batch stays open for announced writes that have not begun
/// (a request still reading a slow client's body, say).
const MAX_HOLD: Duration = Duration::from_millis(5);

/// How often a write waiting for its batch checks that someone is still
/// working on it (a writer that was next in line may have given up).
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// Failed batches remembered for their members.
const FAILURES_KEPT: usize = 64;

/// The shared state of group commit.
pub(super) struct Group {
    state: Mutex<State>,
    ended: Condvar,
    /// Writers waiting for the writer connection.
    queued: AtomicUsize,
    /// Writes announced and not begun (see `Group::announce`).
    expected: AtomicUsize,
    /// How long a batch may stay open for them: `MAX_HOLD`.
    hold: Duration,
    /// Writes that joined a batch, and batches committed: their ratio is
    /// the batching achieved.
    writes: AtomicU64,
    commits: AtomicU64,
    /// Called by a writer about to wait for its batch to commit: the
    /// server gives that thread's turn to another request meanwhile (see
    /// `Store::open`).
    waiting: fn(),
}

impl Default for Group {
    fn default() -> Group {
        Group::new(|| {})
    }
}

impl Group {
    /// A group whose writers call `waiting` before they wait on a commit.
    pub(super) fn new(waiting: fn()) -> Group {
        Group {
            state: Mutex::default(),
            ended: Condvar::new(),
            queued: AtomicUsize::new(0),
            expected: AtomicUsize::new(0),
            hold: MAX_HOLD,
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            waiting,
        }
    }
}

#[derive(Default)]
struct State {
    /// The batch whose transaction is open on the writer connection.
    open: Option<Open>,
    /// The last batch id handed out.
    last: u64,
    /// Every batch up to this one has ended (committed or failed).
    ended: u64,
    /// Writes in the open batch.
    members: usize,
    /// The ids of the articles the open batch created and has not yet put
    /// in the full-text index, first and last (see `Group::created`).
    unindexed: Option<(i64, i64)>,
    /// Recently failed batches and why.
    failures: VecDeque<(u64, String)>,
}

/// The open batch: its id, and when it began.
#[derive(Clone, Copy)]
struct Open {
    id: u64,
    since: Instant,
}

impl State {
    fn end(&mut self, id: u64, failure: Option<String>) {
        self.open = None;
        self.ended = id;
        self.members = 0;
        self.unindexed = None;
        if let Some(reason) = failure {
            if self.failures.len() == FAILURES_KEPT {
                self.failures.pop_front();
            }
            self.failures.push_back((id, reason));
        }
    }

    /// Whether batch `id` is the open one.
    fn is_open(&self, id: u64) -> bool {
        self.open.is_some_and(|open| open.id == id)
    }

    /// How much longer the open batch may wait for announced writes: zero
    /// once `hold` has passed, or with no batch open.
    fn hold_left(&self, hold: Duration) -> Duration {
        self.open.map_or(Duration::ZERO, |open| {
            hold.saturating_sub(open.since.elapsed())
        })
    }

    /// Whether the open batch may still wait for announced writes.
    fn may_hold(&self, hold: Duration) -> bool {
        self.members < MAX_BATCH && !self.hold_left(hold).is_zero()
    }

    fn outcome(&self, id: u64) -> Result<(), StoreError> {
        match self.failures.iter().find(|(failed, _)| *failed == id) {
            Some((_, reason)) => Err(StoreError::unavailable(format!(
                "the transaction holding this write failed: {reason}"
            ))),
            None => Ok(()),
        }
    }
}

/// One write's place in a batch: the writer connection, inside the open
/// transaction, until the write leaves it.
pub(super) struct WriteBatch<'s> {
    store: &'s SqliteStore,
    conn: Option<Pooled>,
    id: u64,
}

impl SqliteStore {
    /// Joins the open write transaction, or begins one (`BEGIN IMMEDIATE`).
    /// Waits at most `BUSY_TIMEOUT` for the writer connection. A transaction
    /// is not begun while the database path does not name the files opened
    /// (see `files`); one open already is checked when it commits.
    pub(super) fn write(&self) -> Result<WriteBatch<'_>, StoreError> {
        let group = &self.group;
        group.queued.fetch_add(1, Ordering::SeqCst);
        // Queued first, then no longer expected: never neither in between.
        if group.take_announcement() {
            group.expected.fetch_sub(1, Ordering::SeqCst);
        }
        let conn = self.writer.get();
        group.queued.fetch_sub(1, Ordering::SeqCst);
        let conn = conn?;
        let mut state = lock(group);
        let id = match state.open {
            Some(open) => open.id,
            None => {
                self.check_files()?;
                conn.execute_batch("BEGIN IMMEDIATE")?;
                state.last += 1;
                state.open = Some(Open {
                    id: state.last,
                    since: Instant::now(),
                });
                state.last
            }
        };
        state.members += 1;
        group.writes.fetch_add(1, Ordering::Relaxed);
        Ok(WriteBatch {
            store: self,
            conn: Some(conn),
            id,
        })
    }
}

impl SqliteStore {
    /// One write in its own savepoint of the open (or a new) batch, made
    /// durable before this returns.
    pub(super) fn short_write<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut batch = self.write()?;
        let tx = batch.savepoint()?;
        let result = work(&tx)?;
        tx.commit()?;
        batch.finish()?;
        Ok(result)
    }
}

thread_local! {
    /// The group this thread has announced a write to (its address), or 0.
    static ANNOUNCED: Cell<usize> = const { Cell::new(0) };
}

impl Group {
    /// The calling thread will probably write soon: an open batch waits for
    /// it (see the module's docs). One announcement per thread at a time.
    pub(super) fn announce(&self) {
        if ANNOUNCED.get() == 0 {
            ANNOUNCED.set(self.address());
            self.expected.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The calling thread's announced write will not come after all.
    pub(super) fn withdraw(&self) {
        if self.take_announcement() && self.expected.fetch_sub(1, Ordering::SeqCst) == 1 {
            // A batch left open for it may be waiting: whoever waits on it
            // commits it now. Without the state's lock, which a writer may
            // hold for seconds while another process has the database
            // locked: a waiter that misses this wakes when the hold ends.
            self.ended.notify_all();
        }
    }

    /// Ends this thread's announcement to this group, if it made one.
    fn take_announcement(&self) -> bool {
        let mine = ANNOUNCED.get() == self.address();
        if mine {
            ANNOUNCED.set(0);
        }
        mine
    }

    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Whether a write is waiting for the writer connection or announced.
    fn others_coming(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0 || self.expected.load(Ordering::SeqCst) > 0
    }

    /// Article `id` was just inserted in the open batch (`insert_article`
    /// says so itself): the batch puts it in the full-text index before it
    /// commits (`index_created`).
    ///
    /// Indexing each article in its own savepoint cost most of a POST's
    /// share of the full-text index: FTS5 writes its pending terms to disk
    /// at every savepoint, a new segment each time. Ids come from one
    /// writer in increasing order, so the articles created since the last
    /// indexing are exactly the ids from first to last (one whose write was
    /// undone is simply not there, or its id was taken again).
    pub(super) fn created(&self, id: i64) {
        let mut state = lock(self);
        state.unindexed = Some(match state.unindexed {
            Some((first, last)) => (first.min(id), last.max(id)),
            None => (id, id),
        });
    }

    /// Writes and commits since the store opened.
    pub(super) fn write_counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.commits.load(Ordering::Relaxed),
        )
    }
}

impl WriteBatch<'_> {
    /// A savepoint for this write: `commit` keeps its changes in the batch,
    /// dropping it undoes them. The articles the batch created so far are
    /// put in the full-text index first, outside the savepoint: an update
    /// or delete here must find them there, and undoing this write must not
    /// take them out again.
    pub(super) fn savepoint(&mut self) -> Result<Savepoint<'_>, StoreError> {
        let conn = self.conn.as_mut().expect("a batch in use");
        index_created(&self.store.group, conn)?;
        Ok(conn.savepoint()?)
    }

    /// A savepoint for a write that only creates articles: the batch's
    /// new articles stay out of the full-text index until it commits.
    pub(super) fn create_savepoint(&mut self) -> Result<Savepoint<'_>, StoreError> {
        Ok(self.conn.as_mut().expect("a batch in use").savepoint()?)
    }

    /// Leaves the batch and waits for it to end: `Ok` means the write is
    /// durable. Call it after the savepoint's `commit`.
    pub(super) fn finish(mut self) -> Result<(), StoreError> {
        self.leave(true)
    }

    /// Hands the transaction to the next writer if one is queued or, with
    /// `wait`, announced (and the batch may still hold), else commits it.
    /// With `wait`, returns once the batch has ended, with its outcome.
    /// Without, nobody might be left waiting to commit for an announced
    /// write that never comes, so only a queued writer takes over.
    fn leave(&mut self, wait: bool) -> Result<(), StoreError> {
        let Some(conn) = self.conn.take() else {
            return Ok(());
        };
        let group = &self.store.group;
        let mut state = lock(group);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (a full disk, an I/O
            // error): every write of the batch is lost, ours included.
            state.end(self.id, Some("rolled back by the database".into()));
            group.ended.notify_all();
            return Err(StoreError::unavailable(
                "the write transaction was rolled back",
            ));
        }
        let coming = if wait {
            group.others_coming()
        } else {
            group.queued.load(Ordering::SeqCst) > 0
        };
        if coming && state.may_hold(group.hold) {
            drop(conn); // the next writer in line continues the transaction
            if !wait {
                return Ok(());
            }
            return self.await_end(state);
        }
        commit(self.store, state, &conn, self.id)
    }

    /// Waits for batch `self.id` to end, its worker's turn given back.
    /// Should the writers it was left open for not come (an announced one
    /// gave up, or is still reading its body when the hold ends; one next
    /// in line gave up before taking the connection), nobody would commit:
    /// then whoever waits takes the idle connection and commits the batch
    /// itself.
    fn await_end<'g>(&self, mut state: MutexGuard<'g, State>) -> Result<(), StoreError> {
        let group = &self.store.group;
        (group.waiting)();
        while state.ended < self.id {
            let abandoned = group.queued.load(Ordering::SeqCst) == 0
                && (group.expected.load(Ordering::SeqCst) == 0 || !state.may_hold(group.hold));
            if state.is_open(self.id) && abandoned {
                // The state stays locked meanwhile: the batch is still open.
                if let Some(conn) = self.store.writer.try_get() {
                    return commit(self.store, state, &conn, self.id);
                }
            }
            // Wakes when the hold ends, if it is what keeps the batch open.
            let hold_left = state.hold_left(group.hold);
            let slice = if group.expected.load(Ordering::SeqCst) > 0 && !hold_left.is_zero() {
                hold_left.min(WAIT_SLICE)
            } else {
                WAIT_SLICE
            };
            state = group
                .ended
                .wait_timeout(state, slice)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        state.outcome(self.id)
    }
}

impl Drop for WriteBatch<'_> {
    /// A write that returns early (nothing to change, a refused check) still
    /// leaves the batch, so the writes before it get committed.
    fn drop(&mut self) {
        if let Err(err) = self.leave(false) {
            log::warn!("leaving a write batch: {err}");
        }
    }
}

/// Commits batch `id` on `conn` and tells every member how it ended. A
/// commit that went to files the database path no longer names (moved or
/// replaced meanwhile) is not acknowledged: those writes would be lost.
///
/// The members are woken after the state is unlocked: woken while it was
/// still locked, each went back to sleep on the lock at once, two thread
/// switches per member instead of one.
fn commit(
    store: &SqliteStore,
    mut state: MutexGuard<'_, State>,
    conn: &Pooled,
    id: u64,
) -> Result<(), StoreError> {
    let group = &store.group;
    let mut outcome = match state.unindexed.take() {
        Some((first, last)) => index_articles(conn, first, last),
        None => Ok(()),
    };
    if outcome.is_ok() {
        outcome = conn.execute_batch("COMMIT").map_err(StoreError::from);
    }
    group.commits.fetch_add(1, Ordering::Relaxed);
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if outcome.is_ok() {
        outcome = store.check_files();
    }
    state.end(id, outcome.as_ref().err().map(ToString::to_string));
    drop(state);
    group.ended.notify_all();
    outcome
}

/// Puts the articles the open batch created so far in the full-text index.
fn index_created(group: &Group, conn: &Connection) -> Result<(), StoreError> {
    let mut state = lock(group);
    if let Some((first, last)) = state.unindexed {
        index_articles(conn, first, last)?;
        state.unindexed = None;
    }
    Ok(())
}

fn lock(group: &Group) -> MutexGuard<'_, State> {
    // The state is consistent at every unlock, so a panic elsewhere while
    // holding it leaves nothing half-done.
    group
        .state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::super::SqliteStore;
    use crate::store::{Articles, Operations};

    use crate::model::article::ArticleChange;
    use crate::store::{Options, Outbox, Store, StoreError};

    fn options(connections: u32) -> Options {
        Options {
            connections,
            ..Options::default()
        }
    }

    fn change(title: String) -> ArticleChange {
        ArticleChange {
            title: Some(title),
            content: Some("c".into()),
            tags: Some(vec![]),
        }
    }

    fn total(store: &Store) -> u64 {
        let query = crate::model::ArticleQuery::parse(&[]).unwrap();
        store.list_articles(&query).unwrap().total
    }

    #[test]
    fn concurrent_writes_share_commits_and_all_land() {
        let dir = std::env::temp_dir().join(format!("articles-batch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(Store::open(dir.join("b.db").to_str().unwrap(), options(2)).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    for n in 0..40 {
                        let created = store.create_article(&change(format!("{t}-{n}")), None);
                        assert!(created.is_ok(), "{created:?}");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(total(&store), 640);
        let (writes, commits) = store.write_counts();
        assert_eq!(writes, 640);
        assert!(
            commits < writes,
            "{commits} commits for {writes} writes: no batching"
        );
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_refused_write_does_not_undo_the_others_in_its_batch() {
        let store = Arc::new(Store::open(":memory:", options(2)).unwrap());
        let first = store.create_article(&change("keep".into()), None).unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    for n in 0..30 {
                        if (t + n) % 3 == 0 {
                            let refused = store.update_article(first.id, |_| {
                                Err::<ArticleChange, _>(StoreError::internal("refused"))
                            });
                            assert!(refused.is_err());
                        } else {
                            store
                                .create_article(&change(format!("{t}-{n}")), None)
                                .unwrap();
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let refused = (0..8)
            .flat_map(|t| (0..30).map(move |n| (t + n) % 3 == 0))
            .filter(|r| *r)
            .count() as u64;
        assert_eq!(total(&store), 1 + 240 - refused);
        assert_eq!(store.article(first.id).unwrap().unwrap().title, "keep");
    }

    #[test]
    fn a_batch_indexes_its_new_articles_before_it_commits_and_before_changes() {
        use super::super::articles::insert_article;

        let store = SqliteStore::open(":memory:", 2, || {}).unwrap();
        let outbox = Outbox::default();
        let mut batch = store.write().unwrap();
        let create = |batch: &mut super::WriteBatch<'_>, title: &str| {
            let tx = batch.create_savepoint().unwrap();
            let (article, _) =
                insert_article(&tx, &store.group, &change(title.into()), None, &outbox).unwrap();
            tx.commit().unwrap();
            article.id
        };
        let ids = [
            create(&mut batch, "alpha"),
            create(&mut batch, "bravo"),
            create(&mut batch, "charlie"),
        ];
        {
            // Undone: the next creation takes its id again.
            let tx = batch.create_savepoint().unwrap();
            insert_article(&tx, &store.group, &change("undone".into()), None, &outbox).unwrap();
        }
        // An update and a delete in the same batch, through the triggers
        // that expect the articles to be in the index already.
        let tx = batch.savepoint().unwrap();
        tx.execute(
            "UPDATE articles SET title = 'delta' WHERE id = ?1",
            [ids[1]],
        )
        .unwrap();
        tx.execute("DELETE FROM articles WHERE id = ?1", [ids[2]])
            .unwrap();
        tx.commit().unwrap();
        let echo = create(&mut batch, "echo");
        batch.finish().unwrap();

        let conn = store.writer.get().unwrap();
        // FTS5's check of the index against the articles table itself.
        conn.execute(
            "INSERT INTO articles_fts (articles_fts, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
        let found = |word: &str| -> Vec<i64> {
            conn.prepare("SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?1")
                .unwrap()
                .query_map([word], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(found("alpha"), [ids[0]]);
        assert_eq!(found("delta"), [ids[1]]);
        assert_eq!(found("echo"), [echo]);
        for gone in ["bravo", "charlie", "undone"] {
            assert!(found(gone).is_empty(), "{gone} is still indexed");
        }
    }

    /// An in-memory store whose batches wait `hold` for announced writes.
    fn holding(hold: Duration) -> Arc<SqliteStore> {
        let mut store = SqliteStore::open(":memory:", 2, || {}).unwrap();
        store.group.hold = hold;
        Arc::new(store)
    }

    /// Creates an article on another thread; the receiver hears when the
    /// creation returned (committed).
    fn create_in_background(store: &Arc<SqliteStore>, title: &str) -> mpsc::Receiver<()> {
        let (store, title, (done, returned)) =
            (Arc::clone(store), title.to_owned(), mpsc::channel());
        thread::spawn(move || {
            store
                .create_article(&change(title), None, &Outbox::default())
                .unwrap();
            done.send(()).unwrap();
        });
        returned
    }

    /// A thread that announces a write, then on each message either writes
    /// (`true`) or withdraws (`false`), and stops.
    fn announcer(store: &Arc<SqliteStore>) -> mpsc::Sender<bool> {
        let (store, (order, orders), (announced, has)) =
            (Arc::clone(store), mpsc::channel(), mpsc::channel());
        thread::spawn(move || {
            store.announce_write();
            announced.send(()).unwrap();
            if orders.recv() == Ok(true) {
                store
                    .create_article(&change("announced".into()), None, &Outbox::default())
                    .unwrap();
            }
            store.withdraw_write();
        });
        has.recv().unwrap();
        order
    }

    #[test]
    fn a_commit_waits_for_an_announced_write_and_carries_it() {
        let store = holding(Duration::from_secs(60));
        let announced = announcer(&store);
        let first = create_in_background(&store, "first");
        assert!(
            first.recv_timeout(Duration::from_millis(300)).is_err(),
            "committed without waiting for the announced write"
        );
        announced.send(true).unwrap();
        first
            .recv_timeout(Duration::from_secs(10))
            .expect("the announced write did not commit the batch");
        assert_eq!(store.write_counts(), (2, 1), "(writes, commits)");
    }

    #[test]
    fn a_withdrawn_announcement_lets_the_batch_commit_at_once() {
        let store = holding(Duration::from_secs(60));
        let announced = announcer(&store);
        let first = create_in_background(&store, "first");
        thread::sleep(Duration::from_millis(50));
        announced.send(false).unwrap();
        first
            .recv_timeout(Duration::from_secs(10))
            .expect("still waiting for a withdrawn write");
        assert_eq!(store.write_counts(), (1, 1), "(writes, commits)");
    }

    #[test]
    fn a_batch_waits_for_an_announced_write_only_so_long() {
        let store = holding(Duration::from_millis(100));
        let announced = announcer(&store);
        let started = Instant::now();
        create_in_background(&store, "first")
            .recv_timeout(Duration::from_secs(10))
            .expect("held open past the hold");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert_eq!(store.write_counts(), (1, 1), "(writes, commits)");
        announced.send(true).unwrap();
    }

    #[test]
    fn a_panicking_write_leaves_the_writer_usable() {
        let store = Store::open(":memory:", options(1)).unwrap();
        let first = store.create_article(&change("a".into()), None).unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = store.update_article(first.id, |_| -> Result<ArticleChange, StoreError> {
                panic!("in the middle of a write")
            });
        }));
        assert!(panicked.is_err());
        store.create_article(&change("b".into()), None).unwrap();
        assert_eq!(total(&store), 2);
        assert_eq!(store.article(first.id).unwrap().unwrap().title, "a");
    }
}
