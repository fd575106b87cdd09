//! Article SQL.

use rusqlite::types::Value;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::batch::Group;
use super::outbox::{record_event, FEED_POSITION};
use super::SqliteStore;
use crate::model::article::{Article, ArticleChange, Author};
use crate::model::ArticleQuery;
use crate::model::EventType;
use crate::model::User;
use crate::store::{apply, order_by, Articles, Check, Listing, NewArticle, StoreError};
use crate::store::{ExportError, ExportSink, ExportedUser, ImportError, ImportWork, Transfer};
use crate::store::{Outbox, Recorded};
use crate::util::time::now_millis;

/// The columns of an article and the tables they come from: one row of
/// `articles`, its tags joined in it (migration 5), and its author.
macro_rules! article_columns {
    () => {
        "a.id, a.title, a.content, a.created_at, a.updated_at, a.tags, u.id, u.username \
         FROM articles a LEFT JOIN users u ON u.id = a.author_id"
    };
}

const SELECT_ARTICLE: &str = concat!("SELECT ", article_columns!(), " WHERE a.id = ?1");

const INSERT_ARTICLE: &str =
    "INSERT INTO articles (title, content, created_at, updated_at, author_id, tags) \
     VALUES (?1, ?2, ?3, ?3, ?4, ?5)";

const UPDATE_ARTICLE: &str =
    "UPDATE articles SET title = ?2, content = ?3, updated_at = ?4, tags = ?5 WHERE id = ?1";

/// A change of tags only: title and content stay out of the SET list, so the
/// full-text trigger (`AFTER UPDATE OF title, content`) does not re-index.
const TOUCH_ARTICLE: &str = "UPDATE articles SET updated_at = ?2, tags = ?3 WHERE id = ?1";

const DELETE_ARTICLE: &str = "DELETE FROM articles WHERE id = ?1";

/// Indexes new articles for search; the update and delete triggers keep the
/// index in step after that (see schema.sql, migration 6).
const INDEX_ARTICLES: &str = "INSERT INTO articles_fts (rowid, title, content) \
     SELECT id, title, content FROM articles WHERE id BETWEEN ?1 AND ?2";

const INSERT_TAG: &str = "INSERT INTO article_tags (article_id, tag) VALUES (?1, ?2)";

const DELETE_TAGS: &str = "DELETE FROM article_tags WHERE article_id = ?1";

pub(super) const COUNT_ALL: &str = "SELECT total FROM article_count WHERE only_row = 1";

/// Listing filters, each a condition on `a` with one parameter.
const BY_TAG: &str = "a.id IN (SELECT article_id FROM article_tags WHERE tag = ?)";
const BY_AUTHOR: &str = "a.author_id = (SELECT id FROM users WHERE username = ? COLLATE NOCASE)";
const BY_SEARCH: &str = "a.id IN (SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?)";

impl Articles for SqliteStore {
    fn article(&self, id: i64) -> Result<Option<Article>, StoreError> {
        let conn = self.read()?;
        find(&conn, id)
    }

    /// Three statements whatever the page size.
    fn list_articles(&self, query: &ArticleQuery) -> Result<Listing, StoreError> {
        let mut filters = Vec::new();
        let mut params = Vec::new();
        if let Some(tag) = &query.tag {
            filters.push(BY_TAG);
            params.push(Value::Text(tag.clone()));
        }
        if let Some(author) = &query.author {
            filters.push(BY_AUTHOR);
            params.push(Value::Text(author.clone()));
        }
        let mut conn = self.read()?;
        let tx = conn.transaction()?;
        let events_seq: i64 = tx
            .prepare_cached(FEED_POSITION)?
            .query_row([], |row| row.get(0))?;
        if let Some(words) = &query.words {
            if words.is_empty() {
                return Ok(Listing {
                    articles: Vec::new(),
                    total: 0,
                    events_seq,
                });
            }
            filters.push(BY_SEARCH);
            params.push(Value::Text(fts_query(words)));
        }
        let sql = list_sql(&filters, query);

        let total: i64 = if filters.is_empty() {
            tx.prepare_cached(COUNT_ALL)?
                .query_row([], |row| row.get(0))?
        } else {
            tx.prepare_cached(&count_sql(&filters))?
                .query_row(rusqlite::params_from_iter(&params), |row| row.get(0))?
        };
        params.push(Value::Integer(i64::from(query.per_page)));
        params.push(Value::Integer(query.offset() as i64));
        let articles = tx
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(&params), read_article)?
            .collect::<Result<Vec<_>, _>>()?;
        tx.finish()?;
        Ok(Listing {
            articles,
            total: total.max(0) as u64,
            events_seq,
        })
    }

    fn create_article(
        &self,
        change: &ArticleChange,
        author: Option<&User>,
        outbox: &Outbox,
    ) -> Result<Article, StoreError> {
        // No savepoint: its only failures are the database's own (see
        // `Batch::unguarded`); the change was validated before.
        let written = self.write(|batch| {
            insert_article(
                batch.unguarded(),
                self.writes.group(),
                change,
                author,
                outbox,
            )
        })?;
        Ok(outbox.after_commit(written))
    }

    fn update_article(
        &self,
        id: i64,
        outbox: &Outbox,
        decide: Check<'_, ArticleChange>,
    ) -> Result<Option<Article>, StoreError> {
        let written = self.write(|batch| {
            let tx = batch.savepoint()?;
            let Some(mut article) = find(&tx, id)? else {
                return Ok(None);
            };
            let change = decide(&article)?;
            // A follower of a tag learns that an article left it.
            let tags_before = change.tags.as_ref().map(|_| article.tags.clone());

            let text_changes = change.title.is_some() || change.content.is_some();
            apply(&mut article, change.title, change.content);
            if let Some(tags) = change.tags {
                tx.prepare_cached(DELETE_TAGS)?.execute([id])?;
                insert_tags(&tx, id, &tags)?;
                article.tags = tags;
            }
            let tags = joined(&article.tags);
            if text_changes {
                tx.prepare_cached(UPDATE_ARTICLE)?.execute(params![
                    id,
                    article.title,
                    article.content,
                    article.updated_at,
                    tags
                ])?;
            } else {
                tx.prepare_cached(TOUCH_ARTICLE)?
                    .execute(params![id, article.updated_at, tags])?;
            }
            let recorded = record_event(
                &tx,
                outbox,
                EventType::Updated,
                article.updated_at,
                &article,
                tags_before.as_deref(),
            )?;
            tx.commit()?;
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
        let written = self.write(|batch| {
            let tx = batch.savepoint()?;
            let Some(article) = find(&tx, id)? else {
                return Ok(None);
            };
            guard(&article)?;
            tx.prepare_cached(DELETE_ARTICLE)?.execute([id])?;
            // Never before the article's last change, even if the clock
            // stepped back.
            let at = now_millis().max(article.updated_at);
            let recorded = record_event(&tx, outbox, EventType::Deleted, at, &article, None)?;
            tx.commit()?;
            Ok(Some((article, recorded)))
        })?;
        Ok(written.map(|written| outbox.after_commit(written)))
    }
}

const EXPORT_USERS: &str = "SELECT id, username, created_at FROM users ORDER BY id";

const EXPORT_ARTICLES: &str = concat!("SELECT ", article_columns!(), " ORDER BY a.id");

impl Transfer for SqliteStore {
    fn import(&self, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
        self.import_all(work)
    }

    /// One read transaction: one snapshot, however long the writes go on.
    fn export(&self, sink: &mut dyn ExportSink) -> Result<(), ExportError> {
        let mut conn = self.read()?;
        let tx = conn.transaction()?;
        {
            let mut users = tx.prepare(EXPORT_USERS)?;
            let mut rows = users.query([])?;
            while let Some(row) = rows.next()? {
                let user = ExportedUser {
                    id: row.get(0)?,
                    username: row.get(1)?,
                    created_at: row.get(2)?,
                };
                sink.user(&user).map_err(ExportError::Write)?;
            }
            let mut articles = tx.prepare(EXPORT_ARTICLES)?;
            let mut rows = articles.query([])?;
            while let Some(row) = rows.next()? {
                sink.article(&read_article(row)?)
                    .map_err(ExportError::Write)?;
            }
        }
        tx.finish()?;
        Ok(())
    }
}

fn find(conn: &Connection, id: i64) -> Result<Option<Article>, StoreError> {
    Ok(conn
        .prepare_cached(SELECT_ARTICLE)?
        .query_row([id], read_article)
        .optional()?)
}

/// Inserts an article and its tags inside the caller's write transaction,
/// and records its `article.created` event there too. Returns the article
/// and what was recorded. Tells `group`, whose open batch puts the article
/// in the full-text index (`Group::created`).
pub(super) fn insert_article(
    conn: &Connection,
    group: &Group,
    change: &ArticleChange,
    author: Option<&User>,
    outbox: &Outbox,
) -> Result<(Article, Recorded), StoreError> {
    let new = NewArticle::of(change)?;
    let now = now_millis();
    conn.prepare_cached(INSERT_ARTICLE)?.execute(params![
        new.title,
        new.content,
        now,
        author.map(|user| user.id),
        joined(new.tags)
    ])?;
    let id = conn.last_insert_rowid();
    group.created(id);
    insert_tags(conn, id, new.tags)?;
    let article = new.stored(id, author, now);
    let recorded = record_event(conn, outbox, EventType::Created, now, &article, None)?;
    Ok((article, recorded))
}

/// Puts the articles with ids `first` to `last` in the full-text index, in
/// one statement (see `Group::created`).
pub(super) fn index_articles(conn: &Connection, first: i64, last: i64) -> Result<(), StoreError> {
    conn.prepare_cached(INDEX_ARTICLES)?
        .execute([first, last])?;
    Ok(())
}

pub(super) fn insert_tags(conn: &Connection, id: i64, tags: &[String]) -> Result<(), StoreError> {
    let mut insert = conn.prepare_cached(INSERT_TAG)?;
    for tag in tags {
        insert.execute(params![id, tag])?;
    }
    Ok(())
}

/// Joins an article's tags in its row (`articles.tags`); validation keeps
/// control characters, this one included, out of tags, so splitting on it
/// is exact.
const TAG_SEPARATOR: &str = "\u{1f}";

/// `articles.tags` for `tags`: joined, or NULL for none.
pub(super) fn joined(tags: &[String]) -> Option<String> {
    (!tags.is_empty()).then(|| tags.join(TAG_SEPARATOR))
}

fn read_article(row: &Row<'_>) -> rusqlite::Result<Article> {
    let mut tags: Vec<String> = match row.get_ref(5)?.as_str_or_null()? {
        Some(joined) => joined.split(TAG_SEPARATOR).map(str::to_owned).collect(),
        None => Vec::new(),
    };
    // Written sorted; rows from migration 5 came in key order. Sorting 20 at
    // most keeps the order whatever wrote them.
    tags.sort_unstable();
    Ok(Article {
        id: row.get(0)?,
        title: row.get(1)?,
        content: row.get(2)?,
        created_at: row.get(3)?,
        updated_at: row.get(4)?,
        tags,
        author: match row.get::<_, Option<i64>>(6)? {
            Some(id) => Some(Author {
                id,
                username: row.get(7)?,
            }),
            None => None,
        },
    })
}

/// The WHERE clause of a listing, or nothing.
fn where_clause(filters: &[&str]) -> String {
    if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    }
}

fn count_sql(filters: &[&str]) -> String {
    format!("SELECT count(*) FROM articles a{}", where_clause(filters))
}

fn list_sql(filters: &[&str], query: &ArticleQuery) -> String {
    format!(
        concat!(
            "SELECT ",
            article_columns!(),
            "{} ORDER BY {} LIMIT ? OFFSET ?"
        ),
        where_clause(filters),
        order_by(&query.sort),
    )
}

/// An FTS5 query in which every word must appear and nothing the user typed
/// is FTS5 syntax: each word becomes a quoted string (`"` doubled inside),
/// and strings side by side are ANDed.
fn fts_query(words: &[String]) -> String {
    words
        .iter()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ArticleQuery;
    use crate::util::urlencoded;

    fn store() -> SqliteStore {
        SqliteStore::open(":memory:", 2, || {}).unwrap()
    }

    fn change(title: &str, tags: &[&str]) -> ArticleChange {
        ArticleChange {
            title: Some(title.into()),
            content: Some(format!("content of {title}")),
            tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        }
    }

    fn query(q: &str) -> ArticleQuery {
        ArticleQuery::parse(&urlencoded::parse(q)).unwrap()
    }

    fn plan(store: &SqliteStore, sql: &str, params: &[Value]) -> Vec<String> {
        let conn = store.read().unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        stmt.query_map(rusqlite::params_from_iter(params), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// A plan line that reads a whole table rather than searching an index.
    fn full_scans(lines: &[String]) -> Vec<&String> {
        lines
            .iter()
            .filter(|line| {
                line.starts_with("SCAN")
                    && !line.contains("USING INDEX")
                    && !line.contains("USING COVERING INDEX")
                    && !line.contains("VIRTUAL TABLE")
            })
            .collect()
    }

    #[test]
    fn fts_query_quotes_every_word() {
        let words = vec!["a\"b".to_owned(), "NEAR(x".to_owned(), "*".to_owned()];
        assert_eq!(fts_query(&words), "\"a\"\"b\" \"NEAR(x\" \"*\"");
    }

    #[test]
    fn default_listing_reads_the_index_in_order() {
        let store = store();
        let sql = list_sql(&[], &query(""));
        let lines = plan(&store, &sql, &[Value::Integer(20), Value::Integer(0)]);
        assert!(full_scans(&lines).is_empty(), "{lines:?}");
        assert!(
            !lines.iter().any(|l| l.contains("TEMP B-TREE")),
            "sorts: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l.contains("articles_by_created")),
            "{lines:?}"
        );
    }

    #[test]
    fn every_sort_order_uses_its_index() {
        let store = store();
        for (sort, index) in [
            ("updated_at", "articles_by_updated"),
            ("-updated_at", "articles_by_updated"),
            ("title", "articles_by_title"),
            ("-title", "articles_by_title"),
            ("created_at", "articles_by_created"),
        ] {
            let sql = list_sql(&[], &query(&format!("sort={sort}")));
            let lines = plan(&store, &sql, &[Value::Integer(20), Value::Integer(0)]);
            assert!(lines.iter().any(|l| l.contains(index)), "{sort}: {lines:?}");
            assert!(
                !lines.iter().any(|l| l.contains("TEMP B-TREE")),
                "{sort}: {lines:?}"
            );
        }
    }

    #[test]
    fn filters_avoid_full_scans() {
        let store = store();
        let text = Value::Text("x".into());
        for filters in [
            vec![BY_TAG],
            vec![BY_SEARCH],
            vec![BY_AUTHOR],
            vec![BY_TAG, BY_SEARCH, BY_AUTHOR],
        ] {
            let mut params = vec![text.clone(); filters.len()];
            let lines = plan(&store, &count_sql(&filters), &params);
            assert!(
                full_scans(&lines).is_empty(),
                "count {filters:?}: {lines:?}"
            );
            params.extend([Value::Integer(20), Value::Integer(0)]);
            let lines = plan(&store, &list_sql(&filters, &query("")), &params);
            assert!(full_scans(&lines).is_empty(), "list {filters:?}: {lines:?}");
        }
    }

    #[test]
    fn creates_reads_updates_and_deletes() {
        let store = store();
        let created = store
            .create_article(&change("first", &["a", "b"]), None, &Outbox::default())
            .unwrap();
        assert_eq!(store.article(created.id).unwrap().unwrap(), created);

        let patch = ArticleChange {
            title: Some("renamed".into()),
            ..ArticleChange::default()
        };
        let updated = store
            .update_article(created.id, &Outbox::default(), &mut |_| {
                Ok::<_, StoreError>(patch.clone())
            })
            .unwrap()
            .unwrap();
        assert_eq!(updated.title, "renamed");
        assert_eq!(updated.tags, created.tags);
        assert!(updated.updated_at > created.updated_at);
        assert_eq!(store.article(created.id).unwrap().unwrap(), updated);

        let deleted = store
            .delete_article(created.id, &Outbox::default(), &mut |_| {
                Ok::<_, StoreError>(())
            })
            .unwrap();
        assert_eq!(deleted, Some(updated));
        assert_eq!(store.article(created.id).unwrap(), None);
    }

    #[test]
    fn a_refusing_guard_changes_nothing() {
        let store = store();
        let created = store
            .create_article(&change("kept", &[]), None, &Outbox::default())
            .unwrap();
        let refused = store.delete_article(created.id, &Outbox::default(), &mut |_| {
            Err(StoreError::internal("no"))
        });
        assert!(refused.is_err());
        assert!(store.article(created.id).unwrap().is_some());
    }

    #[test]
    fn lists_filters_searches_and_counts() {
        let store = store();
        store
            .create_article(
                &change("Rust web servers", &["rust", "web"]),
                None,
                &Outbox::default(),
            )
            .unwrap();
        store
            .create_article(
                &change("Python web apps", &["python", "web"]),
                None,
                &Outbox::default(),
            )
            .unwrap();
        store
            .create_article(&change("Cooking", &[]), None, &Outbox::default())
            .unwrap();

        let listing = store.list_articles(&query("")).unwrap();
        let (page, total) = (listing.articles, listing.total);
        assert_eq!(total, 3);
        assert_eq!(page[0].title, "Cooking", "newest first");

        let listing = store.list_articles(&query("tag=web&sort=title")).unwrap();
        let (page, total) = (listing.articles, listing.total);
        assert_eq!(total, 2);
        assert_eq!(page[0].title, "Python web apps");

        let listing = store.list_articles(&query("q=WEB+rust")).unwrap();
        let (page, total) = (listing.articles, listing.total);
        assert_eq!((page.len(), total), (1, 1));

        let listing = store.list_articles(&query("q=%22web%22+OR+NOT")).unwrap();
        let (page, total) = (listing.articles, listing.total);
        assert_eq!((page.len(), total), (0, 0));

        let listing = store.list_articles(&query("per_page=2&page=2")).unwrap();
        let (page, total) = (listing.articles, listing.total);
        assert_eq!((page.len(), total), (1, 3));
    }

    #[test]
    fn ids_are_never_reused() {
        let store = store();
        let first = store
            .create_article(&change("a", &[]), None, &Outbox::default())
            .unwrap();
        store
            .delete_article(first.id, &Outbox::default(), &mut |_| {
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let second = store
            .create_article(&change("b", &[]), None, &Outbox::default())
            .unwrap();
        assert!(second.id > first.id);
    }
}
