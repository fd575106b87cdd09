//! `articles import` on SQLite: one write transaction on the writer.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::articles::{insert_tags, joined};
use super::SqliteStore;
use crate::model::import::{ImportedArticle, ImportedUser};
use crate::store::{ImportError, ImportWork, Imported, Importer, StoreError};
use crate::util::time::now_millis;

const USER_BY_NAME: &str = "SELECT id FROM users WHERE username = ?1 COLLATE NOCASE";
const USER_ID_TAKEN: &str = "SELECT 1 FROM users WHERE id = ?1";
/// A NULL id is assigned, as by a create.
const INSERT_USER: &str = "INSERT INTO users (id, username, created_at) VALUES (?1, ?2, ?3)";
const ARTICLE_EXISTS: &str = "SELECT 1 FROM articles WHERE id = ?1";
const INSERT_ARTICLE: &str = "INSERT INTO articles \
     (id, title, content, created_at, updated_at, author_id, tags) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/// Imported articles enter the full-text index at the end, a run of
/// consecutive ids per statement: FTS5 writes its pending index at every
/// statement that changes it, which one article at a time was a third of
/// the import's time. (An export's ids come in one run, or a few.)
const INDEX_RUN: &str = "INSERT INTO articles_fts (rowid, title, content) \
     SELECT id, title, content FROM articles WHERE id BETWEEN ?1 AND ?2";

/// The trigger that keeps `article_count` is set aside during an import,
/// and the count added once: a trigger makes SQLite keep a statement
/// journal for every insert, which cost more than a quarter of the import.
/// Its own text is kept and put back, in the same transaction.
const COUNT_TRIGGER: &str =
    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'article_count_insert'";
const DROP_COUNT_TRIGGER: &str = "DROP TRIGGER article_count_insert";
const ADD_TO_COUNT: &str = "UPDATE article_count SET total = total + ?1 WHERE only_row = 1";

/// Moves the feed's horizon past every event so far: a row one past the
/// newest, at the horizon (never served), keeps its id from being reused
/// (see `outbox::INSERT_EVENT`).
const PASS_MARK: &str = concat!(
    "INSERT INTO webhook_events (id, type, created_at, body) VALUES ((",
    "SELECT max(coalesce((SELECT max(id) FROM webhook_events), 0), ",
    "(SELECT horizon FROM feed_horizon WHERE id = 1))",
    ") + 1, 'import', ?1, '{}')"
);
const MOVE_HORIZON: &str = "UPDATE feed_horizon SET horizon = ?1 WHERE id = 1";

impl SqliteStore {
    /// On the writer connection, in a transaction of its own rather than a
    /// batch's savepoint: a savepoint journals every page the import
    /// changes, a tenth of its time. (The command runs in a process of its
    /// own; a server on the same file waits for the write lock meanwhile.)
    pub(super) fn import_all(&self, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
        self.check_files()?;
        let mut conn = self.writer.get().map_err(StoreError::from)?;
        // The import's rows refer only to rows it has just found or made:
        // the per-row foreign-key lookups would only cost.
        conn.pragma_update(None, "foreign_keys", false)
            .map_err(StoreError::from)?;
        let imported = Self::import_on(&mut conn, work);
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(StoreError::from)?;
        imported
    }

    fn import_on(conn: &mut Connection, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let mut importer = SqliteImporter {
            conn: &tx,
            users: HashMap::new(),
            added: 0,
            now: now_millis(),
            runs: Vec::new(),
        };
        let trigger: String = tx
            .query_row(COUNT_TRIGGER, [], |row| row.get(0))
            .map_err(StoreError::from)?;
        tx.execute_batch(DROP_COUNT_TRIGGER)
            .map_err(StoreError::from)?;
        work(&mut importer)?;
        let (now, runs) = (importer.now, importer.runs);
        let added: i64 = runs.iter().map(|(first, last)| last - first + 1).sum();
        let finish = || -> Result<(), rusqlite::Error> {
            tx.execute_batch(&trigger)?;
            tx.execute(ADD_TO_COUNT, [added])?;
            let mut index = tx.prepare(INDEX_RUN)?;
            for (first, last) in runs {
                index.execute([first, last])?;
            }
            drop(index);
            tx.prepare_cached(PASS_MARK)?.execute([now])?;
            let mark = tx.last_insert_rowid();
            tx.prepare_cached(MOVE_HORIZON)?.execute([mark])?;
            Ok(())
        };
        finish().map_err(StoreError::from)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(())
    }
}

struct SqliteImporter<'c> {
    conn: &'c Connection,
    /// Users by lower-case name, as found or added.
    users: HashMap<String, i64>,
    /// Users added.
    added: u64,
    now: i64,
    /// The articles added, as runs of consecutive ids.
    runs: Vec<(i64, i64)>,
}

impl Importer for SqliteImporter<'_> {
    fn user(&mut self, user: &ImportedUser) -> Result<i64, StoreError> {
        let key = user.username.to_ascii_lowercase();
        if let Some(id) = self.users.get(&key) {
            return Ok(*id);
        }
        let found: Option<i64> = self
            .conn
            .prepare_cached(USER_BY_NAME)?
            .query_row([&user.username], |row| row.get(0))
            .optional()?;
        let (id, added) = match found {
            Some(id) => (id, false),
            None => {
                // The given id if it is free; another otherwise.
                let id = match user.id {
                    Some(id) if !self.exists(USER_ID_TAKEN, id)? => Some(id),
                    _ => None,
                };
                let created_at = user.created_at.unwrap_or(self.now);
                self.conn.prepare_cached(INSERT_USER)?.execute(params![
                    id,
                    user.username,
                    created_at
                ])?;
                (self.conn.last_insert_rowid(), true)
            }
        };
        self.users.insert(key, id);
        self.added += u64::from(added);
        Ok(id)
    }

    fn article(&mut self, article: &ImportedArticle) -> Result<Imported, StoreError> {
        if let Some(id) = article.id {
            if self.exists(ARTICLE_EXISTS, id)? {
                return Ok(Imported::Exists(id));
            }
        }
        let author = match article.author_user() {
            Some(user) => Some(self.user(&user)?),
            None => None,
        };
        let change = &article.change;
        let (title, content) = (change.title.as_deref(), change.content.as_deref());
        let tags = change.tags.as_deref().unwrap_or_default();
        let (created_at, updated_at) = article.times(self.now);
        self.conn.prepare_cached(INSERT_ARTICLE)?.execute(params![
            article.id,
            title,
            content,
            created_at,
            updated_at,
            author,
            joined(tags)
        ])?;
        let id = self.conn.last_insert_rowid();
        insert_tags(self.conn, id, tags)?;
        match self.runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => self.runs.push((id, id)),
        }
        Ok(Imported::Added(id))
    }

    fn users_added(&self) -> u64 {
        self.added
    }
}

impl SqliteImporter<'_> {
    fn exists(&self, sql: &str, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
