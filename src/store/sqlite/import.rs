//! `articles import` on SQLite: one write transaction on the writer.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::articles::{insert_tags, joined};
use super::outbox::{FEED_POSITION, MOVE_HORIZON};
use super::SqliteStore;
use crate::model::import::{ImportedArticle, ImportedUser};
use crate::store::{ImportError, ImportRows, ImportWork, RowImporter, StoreError};
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
/// feed's position, at the horizon (never served), keeps its id from being
/// reused (see `outbox::INSERT_EVENT`).
const PASS_MARK: &str =
    "INSERT INTO webhook_events (id, type, created_at, body) VALUES (?1, 'import', ?2, '{}')";

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
        let imported = import_on(&mut conn, work);
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(StoreError::from)?;
        imported
    }
}

fn import_on(conn: &mut Connection, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::from)?;
    let trigger: String = tx
        .query_row(COUNT_TRIGGER, [], |row| row.get(0))
        .map_err(StoreError::from)?;
    tx.execute_batch(DROP_COUNT_TRIGGER)
        .map_err(StoreError::from)?;
    let mut importer = RowImporter::new(SqliteRows {
        conn: &tx,
        now: now_millis(),
        runs: Vec::new(),
    });
    work(&mut importer)?;
    let SqliteRows { now, runs, .. } = importer.rows;
    let added: i64 = runs.iter().map(|(first, last)| last - first + 1).sum();
    let finish = || -> Result<(), rusqlite::Error> {
        tx.execute_batch(&trigger)?;
        tx.execute(ADD_TO_COUNT, [added])?;
        let mut index = tx.prepare(INDEX_RUN)?;
        for (first, last) in runs {
            index.execute([first, last])?;
        }
        let mark = tx.query_row(FEED_POSITION, [], |row| row.get::<_, i64>(0))? + 1;
        tx.execute(PASS_MARK, params![mark, now])?;
        tx.execute(MOVE_HORIZON, [mark])?;
        Ok(())
    };
    finish().map_err(StoreError::from)?;
    tx.commit().map_err(StoreError::from)?;
    Ok(())
}

struct SqliteRows<'c> {
    conn: &'c Connection,
    now: i64,
    /// The articles added, as runs of consecutive ids.
    runs: Vec<(i64, i64)>,
}

impl ImportRows for SqliteRows<'_> {
    fn find_user(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(USER_BY_NAME)?
            .query_row([name], |row| row.get(0))
            .optional()?)
    }

    fn add_user(&mut self, user: &ImportedUser) -> Result<i64, StoreError> {
        let id = match user.id {
            Some(id) if !self.exists(USER_ID_TAKEN, id)? => Some(id),
            _ => None,
        };
        let created_at = user.created_at.unwrap_or(self.now);
        self.conn
            .prepare_cached(INSERT_USER)?
            .execute(params![id, user.username, created_at])?;
        Ok(self.conn.last_insert_rowid())
    }

    fn article_exists(&mut self, id: i64) -> Result<bool, StoreError> {
        self.exists(ARTICLE_EXISTS, id)
    }

    fn add_article(
        &mut self,
        article: &ImportedArticle,
        author: Option<i64>,
    ) -> Result<i64, StoreError> {
        let change = &article.change;
        let tags = change.tags.as_deref().unwrap_or_default();
        let (created_at, updated_at) = article.times(self.now);
        self.conn.prepare_cached(INSERT_ARTICLE)?.execute(params![
            article.id,
            change.title,
            change.content,
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
        Ok(id)
    }
}

impl SqliteRows<'_> {
    fn exists(&self, sql: &str, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(sql)?
            .query_row([id], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
