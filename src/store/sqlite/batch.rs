//! Group commit, on one writer thread.
//!
//! Every write of the API runs on the writer thread, over the writer
//! connection (the import and the last checkpoint take that connection
//! from its pool between batches). A write is queued for it as a job (a
//! closure), and the thread that queued it waits for the answer. The writer
//! takes every job queued, runs each in a savepoint of its own inside one
//! `BEGIN IMMEDIATE` transaction (so one failing write does not undo the
//! others), takes the jobs that were queued meanwhile, and once none are
//! left (or `MAX_BATCH` ran) commits once for all, and answers them.
//!
//! A commit per batch instead of per write matters because each commit
//! flushes the full-text index and writes every dirty page to the WAL:
//! under load that was two thirds of the cost of a POST. The batches form
//! by themselves: while the writer works on one, the next queues up.
//!
//! Why a thread of its own rather than handing the connection from one
//! request's thread to the next: each hand-over was a thread switch, and
//! each batch closed as soon as nobody was queued at that instant. Here a
//! write costs its thread one wait, and a batch one wake-up of the writer
//! (figures in `docs/performance.md`).
//!
//! Nobody is answered before the commit that makes their write durable: the
//! answer comes after the commit, and is an error if the commit failed.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::Instant;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, Savepoint};

use super::articles::index_articles;
use super::files::FileGuard;
use super::{SqliteStore, StoreError};
use crate::store::{busy, BUSY_TIMEOUT};
use crate::util::lock;

/// Most writes in one transaction, to bound the wait of the first one.
const MAX_BATCH: usize = 64;

/// What the store and its writer thread share.
pub(super) struct Group {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued for a writer that sleeps, and when
    /// the store closes.
    arrived: Condvar,
    /// The ids of the articles the open batch created and has not yet put
    /// in the full-text index, first and last (see `Group::created`). Only
    /// the writer thread uses it.
    unindexed: Mutex<Option<(i64, i64)>>,
    /// Writes committed, and the commits: their ratio is the batching
    /// achieved.
    writes: AtomicU64,
    commits: AtomicU64,
    /// Called by a thread about to wait for its write's answer: the server
    /// gives that thread's turn to another request meanwhile (see
    /// `Store::open`).
    waiting: fn(),
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// The writer waits for a job (so the next one must wake it).
    sleeping: bool,
    /// The store is closing: the writer runs what is queued, then stops.
    closed: bool,
}

impl Group {
    fn new(waiting: fn()) -> Group {
        Group {
            queue: Mutex::default(),
            arrived: Condvar::new(),
            unindexed: Mutex::new(None),
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            waiting,
        }
    }

    /// Article `id` was just inserted in the open batch (`insert_article`
    /// says so itself): the batch puts it in the full-text index before it
    /// commits, or before a write that is not a creation (`Batch::savepoint`).
    ///
    /// Indexing each article in its own savepoint cost most of a POST's
    /// share of the full-text index: FTS5 writes its pending terms to disk
    /// at every savepoint, a new segment each time. Ids come from one
    /// writer in increasing order, so the articles created since the last
    /// indexing are exactly the ids from first to last (one whose write was
    /// undone is simply not there, or its id was taken again).
    pub(super) fn created(&self, id: i64) {
        let mut unindexed = lock(&self.unindexed);
        *unindexed = Some(match *unindexed {
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

    /// Queues `job` for the writer; gives it back once the store is closed.
    fn push(&self, job: Job) -> Result<(), Job> {
        let mut queue = lock(&self.queue);
        if queue.closed {
            return Err(job);
        }
        queue.jobs.push_back(job);
        if std::mem::take(&mut queue.sleeping) {
            drop(queue);
            self.arrived.notify_one();
        }
        Ok(())
    }

    /// Waits for jobs, and takes up to `most` of them; `None` once the store
    /// is closed and every job has been taken.
    fn next(&self, most: usize) -> Option<VecDeque<Job>> {
        let mut queue = lock(&self.queue);
        while queue.jobs.is_empty() {
            if queue.closed {
                return None;
            }
            queue.sleeping = true;
            queue = self
                .arrived
                .wait(queue)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Some(take(&mut queue, most))
    }

    /// Takes up to `most` of the jobs queued, without waiting.
    fn more(&self, most: usize) -> VecDeque<Job> {
        take(&mut lock(&self.queue), most)
    }

    fn close(&self) {
        lock(&self.queue).closed = true;
        self.arrived.notify_one();
    }
}

fn take(queue: &mut Queue, most: usize) -> VecDeque<Job> {
    match queue.jobs.len() <= most {
        true => std::mem::take(&mut queue.jobs),
        false => queue.jobs.drain(..most).collect(),
    }
}

/// The writer thread, stopped (after the jobs queued) when dropped.
pub(super) struct WriterThread {
    group: Arc<Group>,
    thread: Option<JoinHandle<()>>,
}

impl WriterThread {
    /// Starts the writer thread of the database behind `pool` (one
    /// connection) and `files`.
    pub(super) fn start(
        pool: Pool<SqliteConnectionManager>,
        files: Option<Arc<FileGuard>>,
        waiting: fn(),
    ) -> Result<WriterThread, StoreError> {
        let group = Arc::new(Group::new(waiting));
        let committer = Committer {
            group: Arc::clone(&group),
            pool,
            files,
        };
        let thread = thread::Builder::new()
            .name("writer".into())
            .spawn(move || committer.work())
            .map_err(|err| StoreError::unavailable(format!("starting the writer: {err}")))?;
        Ok(WriterThread {
            group,
            thread: Some(thread),
        })
    }

    pub(super) fn group(&self) -> &Group {
        &self.group
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.group.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SqliteStore {
    /// Runs `work` on the writer thread, in the open write transaction, and
    /// returns its result once the transaction has committed: `Ok` means
    /// what it wrote is durable. `work` gets the batch, and takes a
    /// savepoint of it (`Batch::savepoint`), which it commits for its
    /// changes to count. A panic in `work` is resumed here.
    pub(super) fn write<T: Send>(
        &self,
        work: impl FnOnce(&mut Batch<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let (mut work, mut value) = (Some(work), None);
        self.run_write(&mut |batch| {
            let work = work.take().expect("a write runs once");
            value = Some(work(batch)?);
            Ok(())
        })?;
        value.ok_or_else(|| StoreError::internal("a write was never run"))
    }

    /// `write`, with the types erased: one copy of the queueing and waiting
    /// for every kind of write.
    fn run_write(&self, work: Work<'_>) -> Result<(), StoreError> {
        if ON_WRITER.get() {
            // It would wait for itself for ever.
            return Err(StoreError::internal("a write made from inside a write"));
        }
        let slot = Slot {
            answer: Mutex::new(None),
            done: AtomicBool::new(false),
            waiter: thread::current(),
        };
        let group = self.writes.group();
        (group.waiting)();
        // SAFETY: the job borrows `work` and `slot` for as long as this
        // call lasts, not 'static: whether it ran or not, the job lets go of
        // `work` before it marks `slot` done (its last use of either), and
        // this call returns only once `slot` is done. Nothing between the
        // push and that wait can unwind (an atomic load and `park`). Only
        // lifetimes change, not types.
        let job = unsafe {
            Job {
                work: Some(std::mem::transmute::<Work<'_>, Work<'static>>(work)),
                answer: None,
                slot: Some(std::mem::transmute::<&Slot, &'static Slot>(&slot)),
                queued: Instant::now(),
            }
        };
        if let Err(job) = group.push(job) {
            drop(job);
            return Err(StoreError::unavailable("the database is closing"));
        }
        while !slot.done.load(Ordering::Acquire) {
            thread::park();
        }
        let answer = lock(&slot.answer).take();
        match answer {
            Some(Ok(result)) => result,
            Some(Err(panic)) => panic::resume_unwind(panic),
            None => Err(StoreError::unavailable("the writer stopped")),
        }
    }

    /// One write in its own savepoint, made durable before this returns.
    pub(super) fn short_write<T: Send>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.write(|batch| {
            let tx = batch.savepoint()?;
            let result = work(&tx)?;
            tx.commit()?;
            Ok(result)
        })
    }
}

/// A write's view of the open transaction.
pub(super) struct Batch<'c> {
    conn: &'c mut Connection,
    group: &'c Group,
    /// Whether the write used the transaction without a savepoint.
    unguarded: bool,
}

impl Batch<'_> {
    /// A savepoint for this write: `commit` keeps its changes in the batch,
    /// dropping it undoes them. The articles the batch created so far are
    /// put in the full-text index first, outside the savepoint: an update
    /// or delete here must find them there, and undoing this write must not
    /// take them out again.
    pub(super) fn savepoint(&mut self) -> Result<Savepoint<'_>, StoreError> {
        index_created(self.group, self.conn)?;
        Ok(self.conn.savepoint()?)
    }

    /// The transaction itself, with no savepoint, for a write that can
    /// fail only by the database's own failure (a full disk, an I/O error)
    /// and that undoes nothing it wrote on its own. Should it fail anyway,
    /// the whole batch is rolled back, every write in it fails, and the
    /// writes after it go on in a new transaction.
    ///
    /// Why: a savepoint copies every page it changes into its journal
    /// first, and in a batch the same pages (the tables' last leaves, their
    /// indexes) are copied again for every write (figures in
    /// `docs/performance.md`).
    pub(super) fn unguarded(&mut self) -> &Connection {
        self.unguarded = true;
        self.conn
    }

    /// A savepoint for a write that only creates articles: the batch's
    /// new articles stay out of the full-text index until it commits.
    pub(super) fn create_savepoint(&mut self) -> Result<Savepoint<'_>, StoreError> {
        Ok(self.conn.savepoint()?)
    }
}

/// A write, as `SqliteStore::write` passes it on.
type Work<'w> = &'w mut (dyn FnMut(&mut Batch<'_>) -> Result<(), StoreError> + Send);

/// What a write's thread gets back: the write's result, or its panic.
type Answer = Result<Result<(), StoreError>, Box<dyn Any + Send>>;

/// Where a write's answer goes, on the stack of the thread waiting for it.
struct Slot {
    answer: Mutex<Option<Answer>>,
    done: AtomicBool,
    waiter: Thread,
}

/// A queued write, as the writer thread sees it. Its lifetimes are those
/// of the `SqliteStore::run_write` call waiting for it, erased there.
struct Job {
    work: Option<Work<'static>>,
    /// What running it gave, until it ends.
    answer: Option<Answer>,
    /// Until the answer is given (see `Job::give`).
    slot: Option<&'static Slot>,
    /// When it was queued: one that waited `BUSY_TIMEOUT` for the writer
    /// is answered busy instead of run.
    queued: Instant,
}

impl Job {
    /// Runs the write in `batch`.
    fn run(&mut self, batch: &mut Batch<'_>) {
        if let Some(work) = self.work.take() {
            // A panic undoes the write (its savepoint is dropped on the
            // way) and is resumed on the write's own thread.
            self.answer = Some(panic::catch_unwind(AssertUnwindSafe(|| work(batch))));
        }
    }

    /// How the batch fails with this write, if it failed.
    fn failure(&self) -> Option<StoreError> {
        match &self.answer {
            Some(Ok(Err(err))) => Some(shared(err)),
            Some(Err(_)) => Some(StoreError::internal("a write in it panicked")),
            _ => None,
        }
    }

    /// Answers the write's thread: `failure` is why the transaction that
    /// held the write did not commit, if it did not.
    fn end(mut self, failure: Option<&StoreError>) {
        let answer = match (self.answer.take(), failure) {
            (Some(Ok(Ok(()))) | None, Some(failure)) => Ok(Err(shared(failure))),
            (Some(answer), _) => answer,
            (None, None) => Ok(Err(StoreError::internal("a write was never run"))),
        };
        self.give(Some(answer));
    }

    /// Puts `answer` in the slot and wakes its thread, letting go of the
    /// write first: once the slot is done, its thread may return and end
    /// what the write borrows.
    fn give(&mut self, answer: Option<Answer>) {
        self.work = None;
        if let Some(slot) = self.slot.take() {
            *lock(&slot.answer) = answer;
            let waiter = slot.waiter.clone();
            slot.done.store(true, Ordering::Release);
            waiter.unpark();
        }
    }
}

impl Drop for Job {
    /// A job dropped unanswered (the writer failed): its thread learns
    /// that the writer stopped.
    fn drop(&mut self) {
        self.give(None);
    }
}

/// The writer thread's side: the writer connection's pool and the files
/// to check.
struct Committer {
    group: Arc<Group>,
    pool: Pool<SqliteConnectionManager>,
    files: Option<Arc<FileGuard>>,
}

impl Committer {
    fn work(self) {
        ON_WRITER.set(true);
        // However this thread ends, no write waits for it afterwards.
        let _closing = Closing(&self.group);
        while let Some(jobs) = self.group.next(MAX_BATCH) {
            // Each job's own panic is caught where it runs; one here is a
            // bug of this module. The jobs it held are dropped, which
            // answers them with an error, and the writer goes on.
            if panic::catch_unwind(AssertUnwindSafe(|| self.batch(jobs))).is_err() {
                log::error!("the writer panicked; its batch failed");
                if let Ok(conn) = self.pool.get() {
                    self.roll_back(&conn);
                }
            }
        }
    }

    /// Runs `jobs`, and those queued meanwhile, in one transaction, and
    /// answers them once it ended.
    fn batch(&self, mut jobs: VecDeque<Job>) {
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(err) => return end_all(jobs, Some(&StoreError::from(err))),
        };
        // A transaction left open by a batch that failed half-way: its
        // writes were answered as failed, so they must not commit with these.
        if !self.roll_back(&conn) {
            let failure = StoreError::unavailable("could not roll back a failed batch");
            return end_all(jobs, Some(&failure));
        }
        let mut ran: Vec<Job> = Vec::with_capacity(jobs.len());
        loop {
            while let Some(mut job) = jobs.pop_front() {
                if job.queued.elapsed() >= BUSY_TIMEOUT {
                    let waited = busy("waited too long for the writer");
                    job.end(Some(&waited));
                    continue;
                }
                if conn.is_autocommit() {
                    if let Err(err) = self.begin(&conn) {
                        jobs.push_front(job);
                        return end_all(jobs, Some(&err));
                    }
                }
                let mut batch = Batch {
                    conn: &mut conn,
                    group: &self.group,
                    unguarded: false,
                };
                job.run(&mut batch);
                // The batch is lost if a write without a savepoint failed
                // half-way (see `Batch::unguarded`), or if SQLite rolled
                // the whole transaction back itself (a full disk, an I/O
                // error).
                let lost = match batch.unguarded {
                    true => job.failure(),
                    false => None,
                }
                .or_else(|| {
                    conn.is_autocommit()
                        .then(|| StoreError::unavailable("rolled back by the database"))
                });
                ran.push(job);
                if let Some(failure) = lost {
                    let rolled_back = self.roll_back(&conn);
                    end_all(ran.drain(..), Some(&failure));
                    if !rolled_back {
                        // The next batch tries again first.
                        return end_all(jobs, Some(&failure));
                    }
                }
            }
            jobs = self.group.more(MAX_BATCH.saturating_sub(ran.len()));
            if jobs.is_empty() {
                break;
            }
        }
        if ran.is_empty() {
            return;
        }
        let outcome = self.commit(&conn);
        if outcome.is_ok() {
            let group = &self.group;
            group.writes.fetch_add(ran.len() as u64, Ordering::Relaxed);
            group.commits.fetch_add(1, Ordering::Relaxed);
        }
        end_all(ran, outcome.as_ref().err());
    }

    /// Begins a transaction, unless the database path no longer names the
    /// files opened (see `files`); one open already is checked when it
    /// commits.
    fn begin(&self, conn: &Connection) -> Result<(), StoreError> {
        self.check_files()?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(())
    }

    /// Commits the open transaction. A commit that went to files the
    /// database path no longer names (moved or replaced meanwhile) is not
    /// acknowledged: those writes would be lost.
    fn commit(&self, conn: &Connection) -> Result<(), StoreError> {
        let mut outcome = index_created(&self.group, conn);
        if outcome.is_ok() {
            outcome = conn.execute_batch("COMMIT").map_err(StoreError::from);
        }
        self.roll_back(conn);
        outcome?;
        self.check_files()
    }

    /// Rolls back the open transaction, if one is (none is after a
    /// commit), and forgets the articles it created; returns whether no
    /// transaction is open now.
    fn roll_back(&self, conn: &Connection) -> bool {
        *lock(&self.group.unindexed) = None;
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn.is_autocommit()
    }

    fn check_files(&self) -> Result<(), StoreError> {
        self.files.as_deref().map_or(Ok(()), FileGuard::check)
    }
}

thread_local! {
    /// Whether this thread is a writer thread.
    static ON_WRITER: Cell<bool> = const { Cell::new(false) };
}

/// Closes the queue when the writer thread ends, however it ends, and
/// answers what is left in it: a write queued afterwards is refused rather
/// than left waiting.
struct Closing<'g>(&'g Group);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close();
        let left = std::mem::take(&mut lock(&self.0.queue).jobs);
        drop(left);
    }
}

fn end_all(jobs: impl IntoIterator<Item = Job>, failure: Option<&StoreError>) {
    for job in jobs {
        job.end(failure);
    }
}

/// A transaction's failure as each write it held sees it: of the same kind
/// (a full disk is still a full disk, a busy database still busy), with
/// the transaction's reason.
fn shared(failure: &StoreError) -> StoreError {
    let message = format!("the transaction holding this write failed: {failure}");
    match failure {
        StoreError::Full => StoreError::Full,
        StoreError::Busy(_) => StoreError::Busy(message.into()),
        _ => StoreError::unavailable(message),
    }
}

/// Puts the articles the open batch created so far in the full-text index.
fn index_created(group: &Group, conn: &Connection) -> Result<(), StoreError> {
    let mut unindexed = lock(&group.unindexed);
    if let Some((first, last)) = *unindexed {
        index_articles(conn, first, last)?;
        *unindexed = None;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc, Arc};
    use std::thread;
    use std::time::Duration;

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
        use super::Batch;

        let store = SqliteStore::open(":memory:", 2, || {}).unwrap();
        let outbox = Outbox::default();
        let group = store.writes.group();
        let create = |batch: &mut Batch<'_>, title: &str| {
            let tx = batch.create_savepoint().unwrap();
            let (article, _) =
                insert_article(&tx, group, &change(title.into()), None, &outbox).unwrap();
            tx.commit().unwrap();
            article.id
        };
        let (ids, echo) = store
            .write(|batch| {
                let ids = [
                    create(batch, "alpha"),
                    create(batch, "bravo"),
                    create(batch, "charlie"),
                ];
                {
                    // Undone: the next creation takes its id again.
                    let tx = batch.create_savepoint()?;
                    insert_article(&tx, group, &change("undone".into()), None, &outbox)?;
                }
                // An update and a delete in the same batch, through the
                // triggers that expect the articles to be in the index
                // already.
                let tx = batch.savepoint()?;
                tx.execute(
                    "UPDATE articles SET title = 'delta' WHERE id = ?1",
                    [ids[1]],
                )?;
                tx.execute("DELETE FROM articles WHERE id = ?1", [ids[2]])?;
                tx.commit()?;
                Ok((ids, create(batch, "echo")))
            })
            .unwrap();

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

    #[test]
    fn writes_queued_while_a_batch_runs_share_its_commit() {
        let store = Arc::new(SqliteStore::open(":memory:", 2, || {}).unwrap());
        let (started, start) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let first = {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                store
                    .write(move |_| {
                        started.send(()).unwrap();
                        released.recv().unwrap();
                        Ok(())
                    })
                    .unwrap();
            })
        };
        start.recv().unwrap();
        let queued: Vec<_> = (0..5)
            .map(|n| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    store
                        .create_article(&change(format!("queued {n}")), None, &Outbox::default())
                        .unwrap();
                })
            })
            .collect();
        // Until all five are queued behind the first.
        while super::lock(&store.writes.group().queue).jobs.len() < 5 {
            thread::sleep(Duration::from_millis(1));
        }
        release.send(()).unwrap();
        first.join().unwrap();
        for thread in queued {
            thread.join().unwrap();
        }
        assert_eq!(store.write_counts(), (6, 1), "(writes, commits)");
    }

    #[test]
    fn an_unguarded_write_failing_half_way_undoes_its_whole_batch() {
        let store = Arc::new(SqliteStore::open(":memory:", 2, || {}).unwrap());
        let (started, start) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        type Work = Box<dyn FnOnce(&SqliteStore) -> Result<(), StoreError> + Send>;
        let spawn = |work: Work| {
            let store = Arc::clone(&store);
            thread::spawn(move || work(&store))
        };
        // Holds the writer until the other two are queued behind it.
        let first = spawn(Box::new(move |store| {
            store.short_write(move |tx| {
                tx.execute(
                    "INSERT INTO users (username, created_at) VALUES ('u', 0)",
                    [],
                )?;
                started.send(()).unwrap();
                released.recv().unwrap();
                Ok(())
            })
        }));
        start.recv().unwrap();
        let queued = |jobs: usize| {
            while super::lock(&store.writes.group().queue).jobs.len() < jobs {
                thread::sleep(Duration::from_millis(1));
            }
        };
        // Queued in this order: the creation first, then the failing write.
        let created = spawn(Box::new(|store| {
            store
                .create_article(&change("created".into()), None, &Outbox::default())
                .map(drop)
        }));
        queued(1);
        let failing = spawn(Box::new(|store| {
            store.write(|batch| {
                batch.unguarded().execute(
                    "INSERT INTO users (username, created_at) VALUES ('v', 0)",
                    [],
                )?;
                Err(StoreError::Full)
            })
        }));
        queued(2);
        release.send(()).unwrap();
        assert!(matches!(failing.join().unwrap(), Err(StoreError::Full)));
        for other in [first, created] {
            let failed = other.join().unwrap();
            assert!(matches!(failed, Err(StoreError::Full)), "{failed:?}");
        }
        let conn = store.read().unwrap();
        let rows: i64 = conn
            .query_row(
                "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM articles)",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(rows, 0, "the batch was not undone");
        drop(conn);
        store
            .create_article(&change("after".into()), None, &Outbox::default())
            .unwrap();
        assert_eq!(store.write_counts(), (1, 1), "(writes, commits)");
    }

    #[test]
    fn a_write_made_from_inside_a_write_is_refused_not_deadlocked() {
        let store = SqliteStore::open(":memory:", 2, || {}).unwrap();
        let inner = store.write(|_| Ok(store.short_write(|_| Ok(())))).unwrap();
        assert!(matches!(inner, Err(StoreError::Internal(_))), "{inner:?}");
        store.short_write(|_| Ok(())).unwrap();
    }

    #[test]
    fn a_write_on_a_closed_store_is_refused() {
        let store = SqliteStore::open(":memory:", 2, || {}).unwrap();
        store.writes.group().close();
        let refused = store.write(|_| Ok(()));
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
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
