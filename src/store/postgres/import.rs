//! `articles import` on PostgreSQL: one transaction.

use postgres::GenericClient;

use super::articles::insert_tags;
use super::outbox::{FEED_LOCK, TAKE_FEED_LOCK};
use super::{Db, PgStore};
use crate::model::import::{ImportedArticle, ImportedUser};
use crate::store::{ImportError, ImportRows, ImportWork, RowImporter, StoreError};
use crate::util::time::now_millis;

const USER_BY_NAME: &str = "SELECT id FROM users WHERE lower(username) = lower($1)";
const USER_ID_TAKEN: &str = "SELECT 1 FROM users WHERE id = $1";
const ARTICLE_EXISTS: &str = "SELECT 1 FROM articles WHERE id = $1";
/// The id given (`$1`), or one assigned as a create would but past any
/// given so far (`$4`): the sequence itself follows only when the import
/// commits. (`coalesce` takes no value from the sequence when `$1` is set.)
const INSERT_USER: &str = "INSERT INTO users (id, username, created_at) OVERRIDING SYSTEM VALUE \
     VALUES (coalesce($1, greatest(nextval(pg_get_serial_sequence('users', 'id')), $4)), $2, $3) \
     RETURNING id";
/// As `INSERT_USER` (`$1` and `$7`).
const INSERT_ARTICLE: &str = "INSERT INTO articles \
     (id, title, content, created_at, updated_at, author_id) OVERRIDING SYSTEM VALUE \
     VALUES (coalesce($1, greatest(nextval(pg_get_serial_sequence('articles', 'id')), $7)), \
             $2, $3, $4, $5, $6) RETURNING id";

/// Once imported: the next id assigned follows the largest, never going
/// back.
const FOLLOW_IDS: &str = "SELECT setval(s::regclass, greatest(\
       (SELECT coalesce(max(id), 0) FROM {table}), \
       coalesce(pg_sequence_last_value(s::regclass), 0), 1)) \
     FROM pg_get_serial_sequence('{table}', 'id') AS s";

/// Moves the feed's horizon past every event so far: a seq is taken for
/// the import (under the feed's lock, so no event commits past it unseen)
/// and the horizon set to it.
const PASS_HORIZON: &str = "UPDATE feed_horizon SET horizon = greatest(horizon, \
     nextval(pg_get_serial_sequence('webhook_events', 'id'))) WHERE id = 1";

impl PgStore {
    pub(super) fn import_all(&self, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
        let mut input_error = None;
        let written = self.write(|db| {
            let mut importer = RowImporter::new(PgRows {
                db,
                now: now_millis(),
                next_user: 0,
                next_article: 0,
            });
            if let Err(err) = work(&mut importer) {
                return Err(match err {
                    ImportError::Store(err) => err,
                    input => {
                        input_error = Some(input);
                        // Rolls the import back; the input's error is returned.
                        StoreError::Rejected
                    }
                });
            }
            let db = importer.rows.db;
            for table in ["users", "articles"] {
                db.client
                    .batch_execute(&FOLLOW_IDS.replace("{table}", table))?;
            }
            db.execute(TAKE_FEED_LOCK, &[&FEED_LOCK])?;
            db.execute(PASS_HORIZON, &[])?;
            Ok(())
        });
        match (written, input_error) {
            (_, Some(err)) => Err(err),
            (written, None) => Ok(written?),
        }
    }
}

struct PgRows<'d, 'c, C> {
    db: &'d mut Db<'c, C>,
    now: i64,
    /// One past the largest user and article id given so far.
    next_user: i64,
    next_article: i64,
}

impl<C: GenericClient> ImportRows for PgRows<'_, '_, C> {
    fn find_user(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        match self.db.query_opt(USER_BY_NAME, &[&name])? {
            Some(row) => Ok(Some(row.try_get(0)?)),
            None => Ok(None),
        }
    }

    fn add_user(&mut self, user: &ImportedUser) -> Result<i64, StoreError> {
        let id = match user.id {
            Some(id) if self.db.query_opt(USER_ID_TAKEN, &[&id])?.is_none() => Some(id),
            _ => None,
        };
        if let Some(id) = id {
            self.next_user = self.next_user.max(id + 1);
        }
        let created_at = user.created_at.unwrap_or(self.now);
        let row = self.db.query_one(
            INSERT_USER,
            &[&id, &user.username, &created_at, &self.next_user],
        )?;
        Ok(row.try_get(0)?)
    }

    fn article_exists(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self.db.query_opt(ARTICLE_EXISTS, &[&id])?.is_some())
    }

    fn add_article(
        &mut self,
        article: &ImportedArticle,
        author: Option<i64>,
    ) -> Result<i64, StoreError> {
        if let Some(id) = article.id {
            self.next_article = self.next_article.max(id + 1);
        }
        let change = &article.change;
        let (created_at, updated_at) = article.times(self.now);
        let row = self.db.query_one(
            INSERT_ARTICLE,
            &[
                &article.id,
                &change.title,
                &change.content,
                &created_at,
                &updated_at,
                &author,
                &self.next_article,
            ],
        )?;
        let id: i64 = row.try_get(0)?;
        insert_tags(self.db, id, change.tags.as_deref().unwrap_or_default())?;
        Ok(id)
    }
}
