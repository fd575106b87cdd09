//! Article SQL for PostgreSQL.

use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use super::outbox::{record_event, FEED_POSITION};
use super::{Db, PgStore};
use crate::model::article::{Article, ArticleChange, Author};
use crate::model::ArticleQuery;
use crate::model::EventType;
use crate::model::User;
use crate::store::{apply, order_by, Articles, Check, Events, Listing, NewArticle, StoreError};
use crate::store::{ExportError, ExportSink, ExportedUser, ImportError, ImportWork};
use crate::store::{Outbox, Recorded, Transfer};
use crate::util::time::now_millis;

/// The columns of an article and the tables they come from, its tags as an
/// array from a correlated subquery, so a page of any size is one statement.
macro_rules! article_columns {
    () => {
        "a.id, a.title, a.content, a.created_at, a.updated_at, \
         ARRAY(SELECT tag FROM article_tags WHERE article_id = a.id) AS tags, \
         u.id, u.username \
         FROM articles a LEFT JOIN users u ON u.id = a.author_id"
    };
}

const SELECT_ARTICLE: &str = concat!("SELECT ", article_columns!(), " WHERE a.id = $1");

/// The article, locked until the transaction ends: a second writer waits
/// here, then sees the first one's change (how `If-Match` holds across
/// replicas).
const SELECT_FOR_UPDATE: &str = concat!(
    "SELECT ",
    article_columns!(),
    " WHERE a.id = $1 FOR UPDATE OF a"
);

const INSERT_ARTICLE: &str =
    "INSERT INTO articles (title, content, created_at, updated_at, author_id) \
     VALUES ($1, $2, $3, $3, $4) RETURNING id";

const UPDATE_ARTICLE: &str =
    "UPDATE articles SET title = $2, content = $3, updated_at = $4 WHERE id = $1";

const DELETE_ARTICLE: &str = "DELETE FROM articles WHERE id = $1";

const INSERT_TAGS: &str =
    "INSERT INTO article_tags (article_id, tag) SELECT $1, unnest($2::text[])";

const DELETE_TAGS: &str = "DELETE FROM article_tags WHERE article_id = $1";

/// Listing filters, each a condition on `a` with one parameter (`{}` is
/// its number).
const BY_TAG: &str = "a.id IN (SELECT article_id FROM article_tags WHERE tag = ${})";
const BY_AUTHOR: &str = "a.author_id = (SELECT id FROM users WHERE lower(username) = lower(${}))";
const BY_SEARCH: &str = "a.search @@ websearch_to_tsquery('simple', articles_fold(${}))";

impl Articles for PgStore {
    fn article(&self, id: i64) -> Result<Option<Article>, StoreError> {
        self.read(|db| find(db, SELECT_ARTICLE, id))
    }

    /// Two statements whatever the page size, in one snapshot.
    fn list_articles(&self, query: &ArticleQuery) -> Result<Listing, StoreError> {
        let nothing = |store: &PgStore| {
            Ok(Listing {
                articles: Vec::new(),
                total: 0,
                events_seq: store.feed_position()?,
            })
        };
        if matches_nothing(query) {
            return nothing(self);
        }
        let mut filters = Vec::new();
        let mut params: Vec<Box<dyn ToSql + Sync>> = Vec::new();
        if let Some(tag) = &query.tag {
            filters.push(BY_TAG);
            params.push(Box::new(tag.clone()));
        }
        if let Some(author) = &query.author {
            filters.push(BY_AUTHOR);
            params.push(Box::new(author.clone()));
        }
        if let Some(words) = &query.words {
            if words.is_empty() {
                return nothing(self);
            }
            filters.push(BY_SEARCH);
            params.push(Box::new(search_query(words)));
        }
        let conditions = where_clause(&filters);
        let count = format!("SELECT count(*) FROM articles a{conditions}");
        let page = list_sql(&conditions, filters.len(), query);
        params.push(Box::new(i64::from(query.per_page)));
        params.push(Box::new(query.offset() as i64));
        let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();

        self.read_snapshot(|db| {
            let events_seq: i64 = db.query_one(FEED_POSITION, &[])?.get(0);
            let total: i64 = db.query_one(&count, &params[..filters.len()])?.get(0);
            let articles = db
                .query(&page, &params)?
                .iter()
                .map(read_article)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Listing {
                articles,
                total: total.max(0) as u64,
                events_seq,
            })
        })
    }

    fn create_article(
        &self,
        change: &ArticleChange,
        author: Option<&User>,
        outbox: &Outbox,
    ) -> Result<Article, StoreError> {
        let written = self.write(|db| insert_article(db, change, author, outbox))?;
        Ok(outbox.after_commit(written))
    }

    fn update_article(
        &self,
        id: i64,
        outbox: &Outbox,
        decide: Check<'_, ArticleChange>,
    ) -> Result<Option<Article>, StoreError> {
        let written = self.write(|db| {
            let Some(mut article) = find(db, SELECT_FOR_UPDATE, id)? else {
                return Ok(None);
            };
            let change = decide(&article)?;
            // A follower of a tag learns that an article left it.
            let tags_before = change.tags.as_ref().map(|_| article.tags.clone());
            apply(&mut article, change.title, change.content);
            db.execute(
                UPDATE_ARTICLE,
                &[&id, &article.title, &article.content, &article.updated_at],
            )?;
            if let Some(tags) = change.tags {
                db.execute(DELETE_TAGS, &[&id])?;
                insert_tags(db, id, &tags)?;
                article.tags = tags;
            }
            let recorded = record_event(
                db,
                outbox,
                EventType::Updated,
                article.updated_at,
                &article,
                tags_before.as_deref(),
            )?;
            Ok(Some((article, recorded)))
        })?;
        Ok(written.map(|written| outbox.after_commit(written)))
    }

    fn delete_article(
        &self,
        id: i64,
        outbox: &Outbox,
        guard: Check<'_, ()>,
    ) -> Result<Option<Article>, StoreError> {
        let written = self.write(|db| {
            let Some(article) = find(db, SELECT_FOR_UPDATE, id)? else {
                return Ok(None);
            };
            guard(&article)?;
            db.execute(DELETE_ARTICLE, &[&id])?;
            // Never before the article's last change, even if the clock
            // stepped back.
            let at = now_millis().max(article.updated_at);
            let recorded = record_event(db, outbox, EventType::Deleted, at, &article, None)?;
            Ok(Some((article, recorded)))
        })?;
        Ok(written.map(|written| outbox.after_commit(written)))
    }
}

/// A filter with a NUL character: PostgreSQL text cannot hold one (it
/// refuses the parameter), and nothing stored has one (validation keeps it
/// out of titles, content, tags and usernames), so nothing matches.
fn matches_nothing(query: &ArticleQuery) -> bool {
    let mut values = [&query.tag, &query.author]
        .into_iter()
        .flatten()
        .chain(query.words.iter().flatten());
    values.any(|value| value.contains('\0'))
}

fn find<C: GenericClient>(
    db: &mut Db<'_, C>,
    sql: &str,
    id: i64,
) -> Result<Option<Article>, StoreError> {
    db.query_opt(sql, &[&id])?
        .as_ref()
        .map(read_article)
        .transpose()
}

/// Inserts an article and its tags inside the caller's transaction, and
/// queues its `article.created` event in `outbox` there too. Returns the
/// article and whether an event was queued.
pub(super) fn insert_article<C: GenericClient>(
    db: &mut Db<'_, C>,
    change: &ArticleChange,
    author: Option<&User>,
    outbox: &Outbox,
) -> Result<(Article, Recorded), StoreError> {
    let new = NewArticle::of(change)?;
    let now = now_millis();
    let author_id = author.map(|user| user.id);
    let id: i64 = db
        .query_one(INSERT_ARTICLE, &[new.title, new.content, &now, &author_id])?
        .get(0);
    insert_tags(db, id, new.tags)?;
    let article = new.stored(id, author, now);
    let recorded = record_event(db, outbox, EventType::Created, now, &article, None)?;
    Ok((article, recorded))
}

pub(super) fn insert_tags<C: GenericClient>(
    db: &mut Db<'_, C>,
    id: i64,
    tags: &[String],
) -> Result<(), StoreError> {
    if !tags.is_empty() {
        db.execute(INSERT_TAGS, &[&id, &tags])?;
    }
    Ok(())
}

/// Rows are fetched from a cursor a batch at a time, so that memory stays
/// flat whatever the number of articles.
const EXPORT_BATCH: usize = 1000;

const EXPORT_USERS: &str = "DECLARE export_users NO SCROLL CURSOR FOR \
     SELECT id, username, created_at FROM users ORDER BY id";

const EXPORT_ARTICLES: &str = concat!(
    "DECLARE export_articles NO SCROLL CURSOR FOR SELECT ",
    article_columns!(),
    " ORDER BY a.id"
);

impl Transfer for PgStore {
    fn import(&self, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
        self.import_all(work)
    }

    /// One repeatable-read snapshot, read through cursors.
    fn export(&self, sink: &mut dyn ExportSink) -> Result<(), ExportError> {
        let mut write_failed = None;
        let mut send = |written: std::io::Result<()>| {
            written.map_err(|err| {
                write_failed = Some(err);
                // Only ends the transaction: the write's error is returned.
                StoreError::Rejected
            })
        };
        let read = self.read_snapshot(|db| {
            for (declare, cursor) in [
                (EXPORT_USERS, "export_users"),
                (EXPORT_ARTICLES, "export_articles"),
            ] {
                db.client.batch_execute(declare)?;
                let fetch = format!("FETCH {EXPORT_BATCH} FROM {cursor}");
                loop {
                    let rows = db.client.query(&fetch, &[])?;
                    for row in &rows {
                        send(match cursor {
                            "export_users" => sink.user(&ExportedUser {
                                id: row.try_get(0)?,
                                username: row.try_get(1)?,
                                created_at: row.try_get(2)?,
                            }),
                            _ => sink.article(&read_article(row)?),
                        })?;
                    }
                    if rows.len() < EXPORT_BATCH {
                        break;
                    }
                }
            }
            Ok(())
        });
        match (read, write_failed) {
            (_, Some(err)) => Err(ExportError::Write(err)),
            (result, None) => Ok(result?),
        }
    }
}

fn read_article(row: &Row) -> Result<Article, StoreError> {
    let mut tags: Vec<String> = row.try_get(5)?;
    // Byte order, as on SQLite.
    tags.sort_unstable();
    Ok(Article {
        id: row.try_get(0)?,
        title: row.try_get(1)?,
        content: row.try_get(2)?,
        created_at: row.try_get(3)?,
        updated_at: row.try_get(4)?,
        tags,
        author: match row.try_get::<_, Option<i64>>(6)? {
            Some(id) => Some(Author {
                id,
                username: row.try_get(7)?,
            }),
            None => None,
        },
    })
}

/// The WHERE clause of a listing, its parameters numbered from 1, or
/// nothing.
fn where_clause(filters: &[&str]) -> String {
    if filters.is_empty() {
        return String::new();
    }
    let numbered: Vec<String> = filters
        .iter()
        .enumerate()
        .map(|(n, filter)| filter.replace("{}", &(n + 1).to_string()))
        .collect();
    format!(" WHERE {}", numbered.join(" AND "))
}

fn list_sql(conditions: &str, filters: usize, query: &ArticleQuery) -> String {
    format!(
        concat!(
            "SELECT ",
            article_columns!(),
            "{} ORDER BY {} LIMIT ${} OFFSET ${}"
        ),
        conditions,
        order_by(&query.sort),
        filters + 1,
        filters + 2
    )
}

/// A web-search query in which every word must appear, each as a quoted
/// phrase: PostgreSQL reads nothing inside quotes as an operator, and a
/// quote cannot be escaped there, so quotes in a word become spaces (the
/// parser splits words at them anyway).
fn search_query(words: &[String]) -> String {
    words
        .iter()
        .map(|word| format!("\"{}\"", word.replace('"', " ")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_words_are_quoted_phrases() {
        let words = vec!["or".to_owned(), "a\"b".to_owned(), "-x".to_owned()];
        assert_eq!(search_query(&words), r#""or" "a b" "-x""#);
    }

    #[test]
    fn filters_are_numbered_in_order() {
        assert_eq!(where_clause(&[]), "");
        assert_eq!(
            where_clause(&[BY_TAG, BY_SEARCH]),
            " WHERE a.id IN (SELECT article_id FROM article_tags WHERE tag = $1) AND \
             a.search @@ websearch_to_tsquery('simple', articles_fold($2))"
        );
    }
}
