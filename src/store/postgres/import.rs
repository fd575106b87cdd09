//! `articles import` on PostgreSQL: one transaction.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::GenericClient;

use super::outbox::{FEED_LOCK, TAKE_FEED_LOCK};
use super::{Db, PgStore};
use crate::model::import::{ImportedArticle, ImportedUser};
use crate::store::{ImportError, ImportWork, Imported, Importer, StoreError};
use crate::util::time::now_millis;

const USER_BY_NAME: &str = "SELECT id FROM users WHERE lower(username) = lower($1)";
const USER_ID_TAKEN: &str = "SELECT 1 FROM users WHERE id = $1";
/// An id assigned as a create would, but past any given so far (`$3`):
/// the sequence itself follows only when the import commits.
const INSERT_USER: &str = "INSERT INTO users (id, username, created_at) OVERRIDING SYSTEM VALUE \
     VALUES (greatest(nextval(pg_get_serial_sequence('users', 'id')), $3), $1, $2) RETURNING id";
const INSERT_USER_WITH_ID: &str = "INSERT INTO users (id, username, created_at) \
     OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3) RETURNING id";
const ARTICLE_EXISTS: &str = "SELECT 1 FROM articles WHERE id = $1";
/// As `INSERT_USER`.
const INSERT_ARTICLE: &str = "INSERT INTO articles \
     (id, title, content, created_at, updated_at, author_id) OVERRIDING SYSTEM VALUE \
     VALUES (greatest(nextval(pg_get_serial_sequence('articles', 'id')), $6), \
             $1, $2, $3, $4, $5) RETURNING id";
const INSERT_ARTICLE_WITH_ID: &str = "INSERT INTO articles \
     (id, title, content, created_at, updated_at, author_id) OVERRIDING SYSTEM VALUE \
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
const INSERT_TAGS: &str =
    "INSERT INTO article_tags (article_id, tag) SELECT $1, unnest($2::text[])";

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
            let mut importer = PgImporter {
                db,
                users: HashMap::new(),
                added: 0,
                now: now_millis(),
                next_user: 0,
                next_article: 0,
            };
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
            let db = importer.db;
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

struct PgImporter<'d, 'c, C> {
    db: &'d mut Db<'c, C>,
    /// Users by lower-case name, as found or added.
    users: HashMap<String, i64>,
    /// Users added.
    added: u64,
    now: i64,
    /// One past the largest user and article id given so far.
    next_user: i64,
    next_article: i64,
}

impl<C: GenericClient> Importer for PgImporter<'_, '_, C> {
    fn user(&mut self, user: &ImportedUser) -> Result<i64, StoreError> {
        let key = user.username.to_ascii_lowercase();
        if let Some(id) = self.users.get(&key) {
            return Ok(*id);
        }
        let found = self.db.query_opt(USER_BY_NAME, &[&user.username])?;
        let (id, added) = match found {
            Some(row) => (row.try_get(0)?, false),
            None => {
                let created_at = user.created_at.unwrap_or(self.now);
                let free = match user.id {
                    Some(id) => self
                        .db
                        .query_opt(USER_ID_TAKEN, &[&id])?
                        .is_none()
                        .then_some(id),
                    None => None,
                };
                let row = match free {
                    Some(id) => {
                        self.next_user = self.next_user.max(id + 1);
                        let values: [&(dyn ToSql + Sync); 3] = [&id, &user.username, &created_at];
                        self.db.query_one(INSERT_USER_WITH_ID, &values)?
                    }
                    None => {
                        let values: [&(dyn ToSql + Sync); 3] =
                            [&user.username, &created_at, &self.next_user];
                        self.db.query_one(INSERT_USER, &values)?
                    }
                };
                (row.try_get(0)?, true)
            }
        };
        self.users.insert(key, id);
        self.added += u64::from(added);
        Ok(id)
    }

    fn article(&mut self, article: &ImportedArticle) -> Result<Imported, StoreError> {
        if let Some(id) = article.id {
            if self.db.query_opt(ARTICLE_EXISTS, &[&id])?.is_some() {
                return Ok(Imported::Exists(id));
            }
        }
        let author = match article.author_user() {
            Some(user) => Some(self.user(&user)?),
            None => None,
        };
        let change = &article.change;
        let (title, content) = (change.title.as_deref(), change.content.as_deref());
        let tags = change.tags.clone().unwrap_or_default();
        let (created_at, updated_at) = article.times(self.now);
        let row = match article.id {
            Some(id) => {
                self.next_article = self.next_article.max(id + 1);
                self.db.query_one(
                    INSERT_ARTICLE_WITH_ID,
                    &[&id, &title, &content, &created_at, &updated_at, &author],
                )?
            }
            None => self.db.query_one(
                INSERT_ARTICLE,
                &[
                    &title,
                    &content,
                    &created_at,
                    &updated_at,
                    &author,
                    &self.next_article,
                ],
            )?,
        };
        let id: i64 = row.try_get(0)?;
        if !tags.is_empty() {
            self.db.execute(INSERT_TAGS, &[&id, &tags])?;
        }
        Ok(Imported::Added(id))
    }

    fn users_added(&self) -> u64 {
        self.added
    }
}
