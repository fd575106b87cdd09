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
//! Nobody is answered before the commit that makes their write durable:
//! `WriteBatch::finish` returns only after the batch committed, and an error
//! if it did not, so a failed commit fails every write in it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Savepoint};

use super::{Pooled, SqliteStore, StoreError};

/// Most writes in one transaction, to bound the wait of the first one.
const MAX_BATCH: usize = 64;

/// How often a write waiting for its batch checks that someone is still
/// working on it (a writer that was next in line may have given up).
const WAIT_SLICE: Duration = Duration::from_millis(20);

/// Failed batches remembered for their members.
const FAILURES_KEPT: usize = 64;

/// The shared state of group commit.
#[derive(Default)]
pub(super) struct Group {
    state: Mutex<State>,
    ended: Condvar,
    /// Writers waiting for the writer connection.
    queued: AtomicUsize,
    /// Writes that joined a batch, and batches committed: their ratio is
    /// the batching achieved.
    writes: AtomicU64,
    commits: AtomicU64,
}

#[derive(Default)]
struct State {
    /// The batch whose transaction is open on the writer connection.
    open: Option<u64>,
    /// The last batch id handed out.
    last: u64,
    /// Every batch up to this one has ended (committed or failed).
    ended: u64,
    /// Writes in the open batch.
    members: usize,
    /// Recently failed batches and why.
    failures: VecDeque<(u64, String)>,
}

impl State {
    fn end(&mut self, id: u64, failure: Option<String>) {
        self.open = None;
        self.ended = id;
        self.members = 0;
        if let Some(reason) = failure {
            if self.failures.len() == FAILURES_KEPT {
                self.failures.pop_front();
            }
            self.failures.push_back((id, reason));
        }
    }

    fn outcome(&self, id: u64) -> Result<(), StoreError> {
        match self.failures.iter().find(|(failed, _)| *failed == id) {
            Some((_, reason)) => Err(StoreError::Unavailable(format!(
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
    /// Waits at most `BUSY_TIMEOUT` for the writer connection. Refused while
    /// the database path does not name the files opened (see `files`).
    pub(super) fn write(&self) -> Result<WriteBatch<'_>, StoreError> {
        self.check_files()?;
        let group = &self.group;
        group.queued.fetch_add(1, Ordering::SeqCst);
        let conn = self.writer.get();
        group.queued.fetch_sub(1, Ordering::SeqCst);
        let conn = conn?;
        let mut state = lock(group);
        let id = match state.open {
            Some(id) => id,
            None => {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                state.last += 1;
                state.open = Some(state.last);
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

impl Group {
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
    /// dropping it undoes them.
    pub(super) fn savepoint(&mut self) -> Result<Savepoint<'_>, StoreError> {
        Ok(self.conn.as_mut().expect("a batch in use").savepoint()?)
    }

    /// Leaves the batch and waits for it to end: `Ok` means the write is
    /// durable. Call it after the savepoint's `commit`.
    pub(super) fn finish(mut self) -> Result<(), StoreError> {
        self.leave(true)
    }

    /// Hands the transaction to the next writer if one is queued (and the
    /// batch is not full), else commits it. With `wait`, returns once the
    /// batch has ended, with its outcome.
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
            return Err(StoreError::Unavailable(
                "the write transaction was rolled back".into(),
            ));
        }
        if group.queued.load(Ordering::SeqCst) > 0 && state.members < MAX_BATCH {
            drop(conn); // the next writer in line continues the transaction
            if !wait {
                return Ok(());
            }
            return self.await_end(state);
        }
        commit(self.store, &mut state, &conn, self.id)
    }

    /// Waits for batch `self.id` to end. Should the writer next in line give
    /// up before taking the connection, nobody would commit: then whoever
    /// waits takes the idle connection and commits the batch itself.
    fn await_end<'g>(&self, mut state: MutexGuard<'g, State>) -> Result<(), StoreError> {
        let group = &self.store.group;
        while state.ended < self.id {
            state = group
                .ended
                .wait_timeout(state, WAIT_SLICE)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            if state.open == Some(self.id) && group.queued.load(Ordering::SeqCst) == 0 {
                // The state stays locked meanwhile: the batch is still open.
                if let Some(conn) = self.store.writer.try_get() {
                    return commit(self.store, &mut state, &conn, self.id);
                }
            }
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
fn commit(
    store: &SqliteStore,
    state: &mut State,
    conn: &Pooled,
    id: u64,
) -> Result<(), StoreError> {
    let group = &store.group;
    let mut outcome = conn.execute_batch("COMMIT").map_err(StoreError::from);
    group.commits.fetch_add(1, Ordering::Relaxed);
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if outcome.is_ok() {
        outcome = store.check_files();
    }
    state.end(id, outcome.as_ref().err().map(ToString::to_string));
    group.ended.notify_all();
    outcome
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
    use std::sync::Arc;
    use std::thread;

    use crate::article::ArticleChange;
    use crate::store::{Store, StoreError};
    use crate::webhooks::Outbox;

    fn change(title: String) -> ArticleChange {
        ArticleChange {
            title: Some(title),
            content: Some("c".into()),
            tags: Some(vec![]),
        }
    }

    fn total(store: &Store) -> u64 {
        let query = crate::listing::ArticleQuery::parse(&[]).unwrap();
        store.list_articles(&query).unwrap().1
    }

    #[test]
    fn concurrent_writes_share_commits_and_all_land() {
        let dir = std::env::temp_dir().join(format!("articles-batch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Arc::new(Store::open(dir.join("b.db").to_str().unwrap(), 2).unwrap());
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    for n in 0..40 {
                        let created = store.create_article(
                            &change(format!("{t}-{n}")),
                            None,
                            &Outbox::default(),
                        );
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
        let store = Arc::new(Store::open(":memory:", 2).unwrap());
        let first = store
            .create_article(&change("keep".into()), None, &Outbox::default())
            .unwrap();
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    for n in 0..30 {
                        if (t + n) % 3 == 0 {
                            let refused =
                                store.update_article(first.id, &Outbox::default(), |_| {
                                    Err::<ArticleChange, _>(StoreError::Internal("refused".into()))
                                });
                            assert!(refused.is_err());
                        } else {
                            store
                                .create_article(
                                    &change(format!("{t}-{n}")),
                                    None,
                                    &Outbox::default(),
                                )
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
    fn a_panicking_write_leaves_the_writer_usable() {
        let store = Store::open(":memory:", 1).unwrap();
        let first = store
            .create_article(&change("a".into()), None, &Outbox::default())
            .unwrap();
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = store.update_article(
                first.id,
                &Outbox::default(),
                |_| -> Result<ArticleChange, StoreError> { panic!("in the middle of a write") },
            );
        }));
        assert!(panicked.is_err());
        store
            .create_article(&change("b".into()), None, &Outbox::default())
            .unwrap();
        assert_eq!(total(&store), 2);
        assert_eq!(store.article(first.id).unwrap().unwrap().title, "a");
    }
}
