//! axum 0.8 + tokio + sqlx (SQLite) peer of `articles` ("axum-sqlx" in
//! bench/run.sh), written the idiomatic way: one `SqlitePool` in the
//! router's `State`, `Json` in and out, `query_as` into `FromRow` structs,
//! a `pool.begin()` transaction per write, chrono for the times. WAL and
//! `synchronous = NORMAL` as articles uses them, on articles' own schema.sql
//! (the same tables, indexes, FTS5 index and count table; a new article is
//! put in the FTS5 index by its own transaction, as articles does).
//!
//! No authentication: like the Python peers, a POST is attributed to the
//! seeded user (id 1), read per request the way a current-user lookup would.
//!
//! Usage: axum-sqlx-peer [--addr HOST:PORT] [--db PATH] [--pool-size N]
//!                       [--runtime multi|current]
//! (or PEER_ADDR, PEER_DB, PEER_POOL_SIZE, PEER_RUNTIME).

use std::str::FromStr;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::FromRow;

const SCHEMA: &str = include_str!("../../../../schema.sql");

macro_rules! select_articles {
    () => {
        "SELECT a.id, a.title, a.content, a.created_at, a.updated_at, a.tags, \
         u.id AS author_id, u.username AS author_username \
         FROM articles a LEFT JOIN users u ON u.id = a.author_id"
    };
}

const POST_AS_USER: i64 = 1;

#[derive(FromRow)]
struct ArticleRow {
    id: i64,
    title: String,
    content: String,
    created_at: i64,
    updated_at: i64,
    tags: Option<String>,
    author_id: Option<i64>,
    author_username: Option<String>,
}

#[derive(Serialize, FromRow)]
struct Author {
    id: i64,
    username: String,
}

#[derive(Serialize)]
struct Article {
    id: i64,
    title: String,
    content: String,
    tags: Vec<String>,
    author: Option<Author>,
    #[serde(serialize_with = "rfc3339")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    updated_at: DateTime<Utc>,
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl From<ArticleRow> for Article {
    fn from(row: ArticleRow) -> Article {
        // articles joins an article's tags in its row with U+001F.
        let mut tags: Vec<String> = row
            .tags
            .map(|joined| joined.split('\u{1f}').map(String::from).collect())
            .unwrap_or_default();
        tags.sort();
        Article {
            id: row.id,
            title: row.title,
            content: row.content,
            tags,
            author: match (row.author_id, row.author_username) {
                (Some(id), Some(username)) => Some(Author { id, username }),
                _ => None,
            },
            created_at: millis(row.created_at),
            updated_at: millis(row.updated_at),
        }
    }
}

#[derive(Deserialize)]
struct NewArticle {
    title: String,
    content: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
struct Pagination {
    page: Option<u32>,
    per_page: Option<u32>,
}

enum AppError {
    NotFound,
    Invalid(&'static str),
    Db(sqlx::Error),
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> AppError {
        AppError::Db(err)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            AppError::NotFound => (StatusCode::NOT_FOUND, "Article not found"),
            AppError::Invalid(detail) => (StatusCode::UNPROCESSABLE_ENTITY, detail),
            AppError::Db(err) => {
                eprintln!("database error: {err}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal error")
            }
        };
        (status, Json(serde_json::json!({ "detail": detail }))).into_response()
    }
}

async fn get_article(
    State(pool): State<SqlitePool>,
    Path(id): Path<i64>,
) -> Result<Json<Article>, AppError> {
    let row: ArticleRow = sqlx::query_as(concat!(select_articles!(), " WHERE a.id = ?"))
        .bind(id)
        .fetch_optional(&pool)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(Json(row.into()))
}

async fn list_articles(
    State(pool): State<SqlitePool>,
    Query(p): Query<Pagination>,
) -> Result<(HeaderMap, Json<Vec<Article>>), AppError> {
    let page = p.page.unwrap_or(1);
    let per_page = p.per_page.unwrap_or(20);
    if page == 0 || !(1..=100).contains(&per_page) {
        return Err(AppError::Invalid("page >= 1, per_page 1 to 100"));
    }
    // One read transaction, so that the total and the page agree.
    let mut tx = pool.begin().await?;
    let total: i64 = sqlx::query_scalar("SELECT total FROM article_count WHERE only_row = 1")
        .fetch_one(&mut *tx)
        .await?;
    let rows: Vec<ArticleRow> = sqlx::query_as(concat!(
        select_articles!(),
        " ORDER BY a.created_at DESC, a.id DESC LIMIT ? OFFSET ?"
    ))
    .bind(per_page)
    .bind(i64::from(page - 1) * i64::from(per_page))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(total));
    Ok((headers, Json(rows.into_iter().map(Article::from).collect())))
}

fn validate(mut body: NewArticle) -> Result<NewArticle, AppError> {
    if body.title.trim().is_empty() || body.title.chars().count() > 200 {
        return Err(AppError::Invalid("title: 1 to 200 characters, not blank"));
    }
    if body.content.trim().is_empty() {
        return Err(AppError::Invalid("content: must not be blank"));
    }
    for tag in &body.tags {
        let n = tag.chars().count();
        if n == 0 || n > 50 || tag.trim() != tag || tag.contains('\u{1f}') {
            return Err(AppError::Invalid(
                "tags: each 1 to 50 characters, no surrounding whitespace",
            ));
        }
    }
    body.tags.sort();
    body.tags.dedup();
    if body.tags.len() > 20 {
        return Err(AppError::Invalid("tags: at most 20"));
    }
    Ok(body)
}

async fn create_article(
    State(pool): State<SqlitePool>,
    Json(body): Json<NewArticle>,
) -> Result<impl IntoResponse, AppError> {
    let body = validate(body)?;
    let author: Option<Author> = sqlx::query_as("SELECT id, username FROM users WHERE id = ?")
        .bind(POST_AS_USER)
        .fetch_optional(&pool)
        .await?;
    let now = Utc::now();
    let now_ms = now.timestamp_millis();
    let joined = (!body.tags.is_empty()).then(|| body.tags.join("\u{1f}"));

    let mut tx = pool.begin().await?;
    let id = sqlx::query(
        "INSERT INTO articles (title, content, created_at, updated_at, author_id, tags) \
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(&body.title)
    .bind(&body.content)
    .bind(now_ms)
    .bind(now_ms)
    .bind(author.as_ref().map(|a| a.id))
    .bind(&joined)
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    for tag in &body.tags {
        sqlx::query("INSERT INTO article_tags (article_id, tag) VALUES (?, ?)")
            .bind(id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
    }
    // schema.sql's migration 6: the store, not a trigger, indexes new articles.
    sqlx::query("INSERT INTO articles_fts (rowid, title, content) VALUES (?, ?, ?)")
        .bind(id)
        .bind(&body.title)
        .bind(&body.content)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let now = millis(now_ms);
    let article = Article {
        id,
        title: body.title,
        content: body.content,
        tags: body.tags,
        author,
        created_at: now,
        updated_at: now,
    };
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("/articles/{id}"))],
        Json(article),
    ))
}

/// schema.sql's migrations newer than the database's `user_version`.
async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    const MARKER: &str = "-- migration ";
    let before: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(pool).await?;
    let starts: Vec<usize> = SCHEMA
        .match_indices(MARKER)
        .filter(|(at, _)| *at == 0 || SCHEMA.as_bytes()[at - 1] == b'\n')
        .map(|(at, _)| at)
        .collect();
    assert!(before as usize <= starts.len(), "database schema is newer than schema.sql");
    for (n, &start) in starts.iter().enumerate().skip(before as usize) {
        let end = starts.get(n + 1).copied().unwrap_or(SCHEMA.len());
        let mut tx = pool.begin().await?;
        sqlx::raw_sql(&SCHEMA[start..end]).execute(&mut *tx).await?;
        sqlx::raw_sql(&format!("PRAGMA user_version = {}", n + 1))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    Ok(())
}

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
    let db = option(&args, "--db", "PEER_DB", "axum-sqlx.db");
    let pool_size: u32 = option(&args, "--pool-size", "PEER_POOL_SIZE", "4")
        .parse()
        .expect("--pool-size N");
    let runtime = match option(&args, "--runtime", "PEER_RUNTIME", "current").as_str() {
        "multi" => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        other => panic!("--runtime multi|current, not {other}"),
    }
    .expect("start the runtime");
    runtime.block_on(serve(addr, db, pool_size));
}

async fn serve(addr: String, db: String, pool_size: u32) {
    let options = SqliteConnectOptions::from_str(&db)
        .expect("--db")
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(pool_size)
        .connect_with(options)
        .await
        .expect("open the database");
    migrate(&pool).await.expect("migrate the database");

    let app = Router::new()
        .route("/articles", get(list_articles).post(create_article))
        .route("/articles/{id}", get(get_article))
        .with_state(pool.clone());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!("listening on http://{}", listener.local_addr().unwrap());
    axum::serve(listener, app)
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
    // Closing the pool checkpoints the WAL: one self-contained file is left.
    pool.close().await;
}
