//! axum 0.8 + tokio + rusqlite peer of `articles` ("axum" in bench/run.sh).
//!
//! Written as a performance-minded engineer would write it:
//! - reads run on `spawn_blocking` over a small pool of rusqlite connections
//!   (`--pool-size`, default 4) with cached prepared statements; the
//!   blocking pool is capped at the pool size, so a blocking task always
//!   finds a free connection;
//! - writes go over a channel to one writer thread that owns the only
//!   writing connection; it takes every write queued at the time into one
//!   transaction (each in its own savepoint), so one commit serves them all;
//! - the same `schema.sql` as articles (its migrations, tracked with
//!   `PRAGMA user_version`), so a write keeps the same indexes, full-text
//!   index and count table: articles row (its tags joined in it),
//!   article_tags rows, the count trigger, and the new articles put in the
//!   FTS5 index in one statement before the commit, as articles does since
//!   migration 6;
//! - WAL and `synchronous = NORMAL`.
//!
//! No authentication: like the Python peers, a POST is attributed to the
//! seeded user (id 1), read per write the way a current-user lookup would.
//!
//! Usage: axum-rusqlite-peer [--addr HOST:PORT] [--db PATH] [--pool-size N]
//!                           [--runtime multi|current] [--max-batch N]
//! (or PEER_ADDR, PEER_DB, PEER_POOL_SIZE, PEER_RUNTIME, PEER_MAX_BATCH).

use std::sync::{mpsc, Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use serde::{Deserialize, Serialize, Serializer};
use tokio::sync::oneshot;

/// articles' schema, the very file (see `migrate`).
const SCHEMA: &str = include_str!("../../../../schema.sql");

const SELECT_ARTICLE: &str = "SELECT a.id, a.title, a.content, a.created_at, a.updated_at, \
     a.tags, u.id, u.username FROM articles a LEFT JOIN users u ON u.id = a.author_id \
     WHERE a.id = ?1";
const LIST_ARTICLES: &str = "SELECT a.id, a.title, a.content, a.created_at, a.updated_at, \
     a.tags, u.id, u.username FROM articles a LEFT JOIN users u ON u.id = a.author_id \
     ORDER BY a.created_at DESC, a.id DESC LIMIT ?1 OFFSET ?2";
const COUNT_ALL: &str = "SELECT total FROM article_count WHERE only_row = 1";
const SELECT_USER: &str = "SELECT id, username FROM users WHERE id = ?1";
const INSERT_ARTICLE: &str =
    "INSERT INTO articles (title, content, created_at, updated_at, author_id, tags) \
     VALUES (?1, ?2, ?3, ?3, ?4, ?5)";
const INSERT_TAG: &str = "INSERT INTO article_tags (article_id, tag) VALUES (?1, ?2)";
const INDEX_ARTICLES: &str = "INSERT INTO articles_fts (rowid, title, content) \
     SELECT id, title, content FROM articles WHERE id BETWEEN ?1 AND ?2";

/// How articles joins an article's tags in its row (migration 5).
const TAG_SEPARATOR: char = '\u{1f}';
/// The user POSTs are attributed to (the seeded `bench`).
const POST_AS_USER: i64 = 1;

// ------------------------------------------------------------------ model --

#[derive(Serialize)]
struct Article {
    id: i64,
    title: String,
    content: String,
    tags: Vec<String>,
    author: Option<Author>,
    #[serde(serialize_with = "rfc3339")]
    created_at: i64,
    #[serde(serialize_with = "rfc3339")]
    updated_at: i64,
}

#[derive(Serialize)]
struct Author {
    id: i64,
    username: String,
}

#[derive(Deserialize)]
struct ArticleIn {
    title: String,
    content: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u32>,
    per_page: Option<u32>,
}

fn read_article(row: &Row<'_>) -> rusqlite::Result<Article> {
    let mut tags: Vec<String> = match row.get_ref(5)?.as_str_or_null()? {
        Some(joined) => joined.split(TAG_SEPARATOR).map(str::to_owned).collect(),
        None => Vec::new(),
    };
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

/// `2026-11-24T21:44:09.123Z` from milliseconds since the epoch.
fn rfc3339<S: Serializer>(millis: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    let millis = *millis;
    let secs = millis.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |range: std::ops::Range<usize>, mut value: i64| {
        for digit in out[range].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0..4, year);
    put(5..7, month);
    put(8..10, day);
    put(11..13, sod / 3600);
    put(14..16, sod / 60 % 60);
    put(17..19, sod % 60);
    put(20..23, millis.rem_euclid(1000));
    serializer.serialize_str(std::str::from_utf8(&out).expect("ASCII"))
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The checks articles makes on a POST body (see API.md); the tags come
/// back deduplicated and sorted.
fn validate(mut body: ArticleIn) -> Result<ArticleIn, &'static str> {
    let title_chars = body.title.chars().count();
    if body.title.trim().is_empty() || title_chars > 200 {
        return Err("title: 1 to 200 characters, not blank");
    }
    if body.content.trim().is_empty() {
        return Err("content: must not be blank");
    }
    for tag in &body.tags {
        let chars = tag.chars().count();
        if chars == 0 || chars > 50 || tag.trim() != tag || tag.contains(TAG_SEPARATOR) {
            return Err("tags: each 1 to 50 characters, no surrounding whitespace");
        }
    }
    body.tags.sort_unstable();
    body.tags.dedup();
    if body.tags.len() > 20 {
        return Err("tags: at most 20");
    }
    Ok(body)
}

// --------------------------------------------------------------- database --

fn open(path: &str, create: bool) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(32);
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    Ok(conn)
}

/// Applies schema.sql's migrations newer than the database's
/// `user_version`, each in its own transaction, as articles does.
fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    const MARKER: &str = "-- migration ";
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let before: u32 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let starts: Vec<usize> = SCHEMA
        .match_indices(MARKER)
        .filter(|(at, _)| *at == 0 || SCHEMA.as_bytes()[at - 1] == b'\n')
        .map(|(at, _)| at)
        .collect();
    for (n, &start) in starts.iter().enumerate() {
        let version = n as u32 + 1;
        if version <= before {
            continue;
        }
        let end = starts.get(n + 1).copied().unwrap_or(SCHEMA.len());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(&SCHEMA[start..end])?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()?;
    }
    assert!(
        before <= starts.len() as u32,
        "database schema version {before} is newer than this peer's schema.sql"
    );
    Ok(())
}

/// The reading connections. A blocking task takes one and puts it back;
/// with the blocking pool capped at the pool's size there is always one.
struct Readers {
    idle: Mutex<Vec<Connection>>,
    path: String,
}

impl Readers {
    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        let taken = self.idle.lock().unwrap().pop();
        let mut conn = match taken {
            Some(conn) => conn,
            None => open(&self.path, false)?,
        };
        let result = f(&mut conn);
        self.idle.lock().unwrap().push(conn);
        result
    }
}

struct WriteJob {
    article: ArticleIn,
    reply: oneshot::Sender<rusqlite::Result<Article>>,
}

/// The writer thread: every write queued when it wakes goes into one
/// transaction, each in a savepoint of its own.
fn writer(mut conn: Connection, jobs: mpsc::Receiver<WriteJob>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut results = Vec::with_capacity(batch.len());
        let committed = (|| -> rusqlite::Result<()> {
            let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let (mut first_id, mut last_id) = (i64::MAX, 0);
            for job in &batch {
                let mut sp = tx.savepoint()?;
                let result = insert(&sp, &job.article);
                match &result {
                    Ok(article) => {
                        sp.commit()?;
                        first_id = first_id.min(article.id);
                        last_id = last_id.max(article.id);
                    }
                    Err(_) => sp.rollback()?,
                }
                results.push(result);
            }
            if last_id > 0 {
                tx.prepare_cached(INDEX_ARTICLES)?.execute([first_id, last_id])?;
            }
            tx.commit()
        })();
        match committed {
            Ok(()) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(err) => {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                        Some(err.to_string()),
                    )));
                }
            }
        }
    }
}

fn insert(conn: &Connection, new: &ArticleIn) -> rusqlite::Result<Article> {
    let author = conn
        .prepare_cached(SELECT_USER)?
        .query_row([POST_AS_USER], |row| {
            Ok(Author {
                id: row.get(0)?,
                username: row.get(1)?,
            })
        })
        .optional()?;
    let now = now_millis();
    let joined = (!new.tags.is_empty()).then(|| new.tags.join("\u{1f}"));
    conn.prepare_cached(INSERT_ARTICLE)?.execute(params![
        new.title,
        new.content,
        now,
        author.as_ref().map(|a| a.id),
        joined
    ])?;
    let id = conn.last_insert_rowid();
    let mut insert_tag = conn.prepare_cached(INSERT_TAG)?;
    for tag in &new.tags {
        insert_tag.execute(params![id, tag])?;
    }
    Ok(Article {
        id,
        title: new.title.clone(),
        content: new.content.clone(),
        tags: new.tags.clone(),
        author,
        created_at: now,
        updated_at: now,
    })
}

// ---------------------------------------------------------------- handlers --

struct App {
    readers: Arc<Readers>,
    writes: Mutex<mpsc::Sender<WriteJob>>,
}

type Shared = Arc<App>;

fn detail(status: StatusCode, detail: &str) -> Response {
    (status, Json(serde_json::json!({ "detail": detail }))).into_response()
}

fn internal(err: impl std::fmt::Display) -> Response {
    eprintln!("error: {err}");
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
}

async fn read<T: Send + 'static>(
    app: &App,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, Response> {
    let readers = app.readers.clone();
    match tokio::task::spawn_blocking(move || readers.with(f)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(internal(err)),
        Err(err) => Err(internal(err)),
    }
}

async fn get_article(State(app): State<Shared>, Path(id): Path<i64>) -> Response {
    let found = read(&app, move |conn| {
        conn.prepare_cached(SELECT_ARTICLE)?
            .query_row([id], read_article)
            .optional()
    })
    .await;
    match found {
        Ok(Some(article)) => Json(article).into_response(),
        Ok(None) => detail(StatusCode::NOT_FOUND, "Article not found"),
        Err(response) => response,
    }
}

async fn list_articles(State(app): State<Shared>, Query(q): Query<PageQuery>) -> Response {
    let page = q.page.unwrap_or(1);
    let per_page = q.per_page.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&per_page) {
        return detail(StatusCode::UNPROCESSABLE_ENTITY, "page >= 1, per_page 1 to 100");
    }
    let offset = i64::from(page - 1) * i64::from(per_page);
    let listed = read(&app, move |conn| {
        // One read transaction: the total and the page agree.
        let tx = conn.transaction()?;
        let total: i64 = tx.prepare_cached(COUNT_ALL)?.query_row([], |row| row.get(0))?;
        let articles = tx
            .prepare_cached(LIST_ARTICLES)?
            .query_map(params![per_page, offset], read_article)?
            .collect::<Result<Vec<_>, _>>()?;
        tx.finish()?;
        Ok((total, articles))
    })
    .await;
    match listed {
        Ok((total, articles)) => {
            let mut response = Json(articles).into_response();
            response
                .headers_mut()
                .insert("x-total-count", HeaderValue::from(total));
            response
        }
        Err(response) => response,
    }
}

async fn create_article(State(app): State<Shared>, Json(body): Json<ArticleIn>) -> Response {
    let article = match validate(body) {
        Ok(article) => article,
        Err(message) => return detail(StatusCode::UNPROCESSABLE_ENTITY, message),
    };
    let (reply, answer) = oneshot::channel();
    let sent = app.writes.lock().unwrap().send(WriteJob { article, reply });
    if sent.is_err() {
        return internal("the writer thread is gone");
    }
    match answer.await {
        Ok(Ok(article)) => {
            let location = HeaderValue::from_str(&format!("/articles/{}", article.id)).unwrap();
            (StatusCode::CREATED, [(header::LOCATION, location)], Json(article)).into_response()
        }
        Ok(Err(err)) => internal(err),
        Err(err) => internal(err),
    }
}

// -------------------------------------------------------------------- main --

fn option(args: &[String], flag: &str, env: &str, default: &str) -> String {
    args.windows(2)
        .find(|pair| pair[0] == flag)
        .map(|pair| pair[1].clone())
        .or_else(|| std::env::var(env).ok())
        .unwrap_or_else(|| default.to_owned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = option(&args, "--addr", "PEER_ADDR", "127.0.0.1:8080");
    let db = option(&args, "--db", "PEER_DB", "axum.db");
    let pool_size: usize = option(&args, "--pool-size", "PEER_POOL_SIZE", "4").parse().expect("--pool-size N");
    let runtime = option(&args, "--runtime", "PEER_RUNTIME", "multi");
    let max_batch: usize = option(&args, "--max-batch", "PEER_MAX_BATCH", "64").parse().expect("--max-batch N");

    let mut conn = open(&db, true).expect("open the database");
    migrate(&mut conn).expect("migrate the database");
    conn.execute_batch("PRAGMA temp_store = MEMORY;").expect("configure the writer");
    let readers = (0..pool_size)
        .map(|_| open(&db, false))
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("open the readers");
    let (writes, jobs) = mpsc::channel();
    std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || writer(conn, jobs, max_batch.max(1)))
        .expect("start the writer");
    let app = Arc::new(App {
        readers: Arc::new(Readers {
            idle: Mutex::new(readers),
            path: db.clone(),
        }),
        writes: Mutex::new(writes),
    });

    let mut builder = match runtime.as_str() {
        "multi" => tokio::runtime::Builder::new_multi_thread(),
        "current" => tokio::runtime::Builder::new_current_thread(),
        other => panic!("--runtime multi|current, not {other}"),
    };
    let rt = builder
        .enable_all()
        .max_blocking_threads(pool_size)
        .build()
        .expect("start the runtime");
    rt.block_on(async move {
        let router = Router::new()
            .route("/articles", get(list_articles).post(create_article))
            .route("/articles/{id}", get(get_article))
            .with_state(app);
        let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
        eprintln!("listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            })
            .await
            .expect("serve");
    });
    // Leave one self-contained file behind, as articles does on SIGTERM.
    if let Ok(conn) = open(&db, false) {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}
