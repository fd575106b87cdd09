//! The storage layer: the only module that knows SQL.
//!
//! Handlers talk to a `Store`, which owns one backend behind the `Backend`
//! interface: SQLite (`sqlite`, the embedded default) or, built with the
//! `postgres` feature, PostgreSQL (`postgres`), chosen by `--db`. Each
//! backend keeps its SQL and its schema to itself; everything they share
//! (errors, what a write returns, the webhook outbox's rows) is here.
//!
//! Writes that must check the article as it is inside the transaction
//! (ownership, `If-Match`) take a closure the backend calls there. `Store`
//! adapts the callers' closures, which fail with their own error type, to
//! the backends' object-safe ones, which fail with `StoreError::Rejected`.

mod feed;
mod import;
mod outbox;
pub mod schema;
pub mod sqlite;

#[cfg(feature = "postgres")]
pub mod postgres;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use feed::Feed;
use feed::Tail;
pub(crate) use import::{ImportRows, RowImporter};
pub use outbox::Outbox;
pub(crate) use outbox::Recorded;

use crate::model::article::{Article, ArticleChange, Author};
use crate::model::import::{ImportedArticle, ImportedUser};
use crate::model::User;
use crate::model::{ArticleQuery, Sort, SortKey};

/// How long a statement waits for a lock, and a request for a pooled
/// connection, before the request is answered 503.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The underlying error of a failed storage call, kept as its `source()`.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Why a storage call failed, by what the caller should do about it.
#[derive(Debug)]
pub enum StoreError {
    /// The database stayed locked, or no connection came free, in time.
    Busy(Cause),
    /// The database cannot be opened, read or written.
    Unavailable(Cause),
    /// The disk is full.
    Full,
    /// A uniqueness rule was broken. The operation whose statement broke it
    /// maps it to what it means there (`UsernameTaken`, `KeyInUse`); one
    /// that reaches a caller unmapped is a bug.
    Duplicate(Cause),
    /// The username is taken, in some case.
    UsernameTaken(String),
    /// The same idempotency key was used at the same moment through another
    /// process on this database.
    KeyInUse,
    /// The database was written by a newer `articles`, or is not ours.
    Schema(String),
    /// The caller's check inside the transaction refused the write; its own
    /// error is with the caller (see `Store::update_article`).
    Rejected,
    /// Anything else: a bug.
    Internal(Cause),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Busy(cause) => write!(f, "database busy: {}", Chain(cause.as_ref())),
            StoreError::Unavailable(cause) => {
                write!(f, "database unavailable: {}", Chain(cause.as_ref()))
            }
            StoreError::Full => write!(f, "database or disk is full"),
            StoreError::Duplicate(cause) => {
                write!(f, "unexpected duplicate: {}", Chain(cause.as_ref()))
            }
            StoreError::UsernameTaken(name) => write!(f, "the username '{name}' is taken"),
            StoreError::KeyInUse => write!(f, "the idempotency key is in use elsewhere"),
            StoreError::Schema(message) => write!(f, "{message}"),
            StoreError::Rejected => write!(f, "the write was refused by its check"),
            StoreError::Internal(cause) => write!(f, "database error: {}", Chain(cause.as_ref())),
        }
    }
}

/// An error and its sources, `: `-separated: PostgreSQL's says only "db
/// error", and the server's message is its source.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Busy(cause)
            | StoreError::Unavailable(cause)
            | StoreError::Duplicate(cause)
            | StoreError::Internal(cause) => Some(cause.as_ref()),
            _ => None,
        }
    }
}

impl StoreError {
    /// A bug, described in words.
    pub(crate) fn internal(message: impl Into<String>) -> StoreError {
        StoreError::Internal(message.into().into())
    }

    /// The database cannot be used, described in words.
    pub(crate) fn unavailable(message: impl Into<String>) -> StoreError {
        StoreError::Unavailable(message.into().into())
    }
}

/// Busy or locked database errors and pool time-outs, for `/metrics`.
static BUSY_ERRORS: AtomicU64 = AtomicU64::new(0);

/// A `StoreError::Busy`, counted for `/metrics`.
pub(crate) fn busy(cause: impl Into<Cause>) -> StoreError {
    BUSY_ERRORS.fetch_add(1, Ordering::Relaxed);
    StoreError::Busy(cause.into())
}

impl From<r2d2::Error> for StoreError {
    fn from(err: r2d2::Error) -> StoreError {
        busy(format!("no database connection came free: {err}"))
    }
}

/// How long a saved idempotent response is replayed: 24 hours, in
/// milliseconds.
pub const KEY_LIFETIME_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// Most expired keys a backend removes each time it saves a key: bounded
/// work per request, yet more than one, so the table never holds much
/// beyond the keys of the last 24 hours.
pub const KEYS_PRUNED_PER_SAVE: i64 = 16;

/// A response saved under an idempotency key, as the database keeps it:
/// what the first request was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedResponse {
    /// The status code.
    pub status: u16,
    /// The saved headers, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

/// The idempotency key of one request and the fingerprint of its body.
#[derive(Debug, Clone, Copy)]
pub struct KeyedRequest<'a> {
    /// The writer's user id, or 0 for anonymous writers (user ids start
    /// at 1).
    pub scope: i64,
    /// The key as sent.
    pub key: &'a str,
    /// `idempotency::fingerprint` of the body.
    pub fingerprint: [u8; 32],
}

/// A response saved under a key, with the fingerprint of the body that
/// made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedKey {
    /// The fingerprint of the first request's body.
    pub fingerprint: Vec<u8>,
    /// The first response.
    pub response: SavedResponse,
}

/// What `Store::create_article_once` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creation {
    /// It created an article, and saved this response under the key.
    Created(SavedResponse),
    /// The key was used within its lifetime; nothing was created.
    Earlier(SavedKey),
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryEnd {
    /// A 2xx answer.
    Delivered,
    /// The receiver answered 410 Gone.
    Gone,
    /// 24 hours of failures.
    Expired,
}

impl DeliveryEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryEnd::Delivered => "delivered",
            DeliveryEnd::Gone => "gone",
            DeliveryEnd::Expired => "expired",
        }
    }
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The event's row id.
    pub event: i64,
    /// The `webhook-id`.
    pub webhook_id: String,
    /// The JSON body, exactly as recorded.
    pub body: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// The event's time, in milliseconds since the epoch.
    pub created_at: i64,
}

/// The ORDER BY of a listing over `articles a`: the sort column, then the
/// id as tie breaker, both one way (each backend has an index per order,
/// ending in id).
fn order_by(sort: &Sort) -> String {
    let column = match sort.key {
        SortKey::Created => "a.created_at",
        SortKey::Updated => "a.updated_at",
        SortKey::Title => "a.title",
    };
    let direction = if sort.descending { "DESC" } else { "ASC" };
    format!("{column} {direction}, a.id {direction}")
}

/// What a create writes: the fields of a complete change (handlers make
/// it complete), checked once.
struct NewArticle<'a> {
    title: &'a String,
    content: &'a String,
    tags: &'a [String],
}

impl<'a> NewArticle<'a> {
    fn of(change: &'a ArticleChange) -> Result<NewArticle<'a>, StoreError> {
        match (&change.title, &change.content) {
            (Some(title), Some(content)) => Ok(NewArticle {
                title,
                content,
                tags: change.tags.as_deref().unwrap_or_default(),
            }),
            _ => Err(StoreError::internal("create without title or content")),
        }
    }

    /// The article as written, with the id the database gave it.
    fn stored(&self, id: i64, author: Option<&User>, now: i64) -> Article {
        Article {
            id,
            title: self.title.clone(),
            content: self.content.clone(),
            tags: self.tags.to_vec(),
            author: author.map(|user| Author {
                id: user.id,
                username: user.username.clone(),
            }),
            created_at: now,
            updated_at: now,
        }
    }
}

/// Applies an update's title and content to `article`, and moves its
/// `updated_at` forward, even within one millisecond. Tags are written
/// apart, by the caller.
fn apply(article: &mut Article, title: Option<String>, content: Option<String>) {
    if let Some(title) = title {
        article.title = title;
    }
    if let Some(content) = content {
        article.content = content;
    }
    article.updated_at = crate::util::time::now_millis().max(article.updated_at + 1);
}

/// A check made inside a write transaction: `Err(StoreError::Rejected)`
/// (or any other error) undoes the write.
pub type Check<'a, T> = &'a mut (dyn FnMut(&Article) -> Result<T, StoreError> + Send);

/// Articles: reads, and writes that queue their webhook event in `outbox`
/// in the same transaction.
pub trait Articles {
    /// One article by id.
    fn article(&self, id: i64) -> Result<Option<Article>, StoreError>;

    /// One page of articles matching `query`, how many match in all, and
    /// the change feed's position they reflect, read from one snapshot.
    fn list_articles(&self, query: &ArticleQuery) -> Result<Listing, StoreError>;

    /// Creates an article from a complete change (every field set), written
    /// by `author` (`None`: anonymous), with its `article.created` event.
    fn create_article(
        &self,
        change: &ArticleChange,
        author: Option<&User>,
        outbox: &Outbox,
    ) -> Result<Article, StoreError>;

    /// Changes article `id`, if it exists, with the change `decide` returns
    /// after seeing the article as it is inside the write transaction (so
    /// checks made there cannot race another writer, in this process or
    /// another); an error from `decide` changes nothing. `updated_at`
    /// always moves forward, even within one millisecond.
    fn update_article(
        &self,
        id: i64,
        outbox: &Outbox,
        decide: Check<'_, ArticleChange>,
    ) -> Result<Option<Article>, StoreError>;

    /// Deletes article `id` if it exists and `guard` lets it; returns the
    /// article as it was, which is also the data of its `article.deleted`
    /// event.
    fn delete_article(
        &self,
        id: i64,
        outbox: &Outbox,
        guard: Check<'_, ()>,
    ) -> Result<Option<Article>, StoreError>;
}

/// A page of a listing, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The page.
    pub articles: Vec<Article>,
    /// How many articles match, on every page.
    pub total: u64,
    /// The `seq` of the newest change the page reflects (`Events-Seq`).
    pub events_seq: i64,
}

/// One event of the change feed, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the feed.
    pub seq: i64,
    /// `article.created`, `article.updated` or `article.deleted`.
    pub kind: String,
    /// `{"type", "timestamp", "data"}`, exactly as the webhooks send it.
    pub body: String,
    /// The article's tags before and after the change.
    pub tags: Vec<String>,
    /// The author's username in lower case, if the article has one.
    pub author: Option<String>,
}

/// What `Events::events_after` read, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsRead {
    /// The events after the position asked for, oldest first (shared:
    /// see `feed::Tail`).
    pub events: Vec<Arc<StoredEvent>>,
    /// The newest `seq` committed (or passed over).
    pub newest: i64,
    /// The newest `seq` no longer kept: a position before it has missed
    /// changes.
    pub horizon: i64,
    /// The oldest `seq` kept, if any is.
    pub oldest: Option<i64>,
}

/// The change feed: every change's event, kept for `--events-retention`.
pub trait Events {
    /// Up to `limit` events after `after`, oldest first, with the feed's
    /// bounds, from one snapshot.
    fn events_after(&self, after: i64, limit: usize) -> Result<EventsRead, StoreError>;

    /// The newest `seq` committed (or passed over).
    fn feed_position(&self) -> Result<i64, StoreError>;

    /// Deletes up to `batch` events older than `before` (milliseconds since
    /// the epoch) that have no pending webhook delivery, oldest first, and
    /// moves the horizon past them; returns how many.
    fn prune_events(&self, before: i64, batch: usize) -> Result<usize, StoreError>;
}

/// Responses saved for retries of `POST /articles` with an `Idempotency-Key`.
pub trait IdempotencyKeys {
    /// Creates an article at most once per (scope, key) in 24 hours.
    ///
    /// Inside one write transaction: a live saved response for the key is
    /// returned as `Earlier` and nothing is written. Otherwise `decide`
    /// gives the article to create (its error writes nothing, so a failed
    /// request leaves the key free), and the article, the response `respond`
    /// makes for it and its event are written together. Expired keys are
    /// pruned on the way, a few at a time. The same key used at the same
    /// moment elsewhere is `StoreError::KeyInUse`.
    fn create_article_once(
        &self,
        request: &KeyedRequest<'_>,
        author: Option<&User>,
        outbox: &Outbox,
        decide: &mut (dyn FnMut() -> Result<ArticleChange, StoreError> + Send),
        respond: &mut (dyn FnMut(&Article) -> SavedResponse + Send),
    ) -> Result<Creation, StoreError>;
}

/// Users and their tokens, which are only ever stored as hashes.
pub trait Users {
    /// Creates a user with a first token (given by its hash), in one
    /// transaction. A taken name (in any case) is `StoreError::UsernameTaken`.
    fn create_user(&self, username: &str, token_hash: &[u8]) -> Result<User, StoreError>;

    /// Adds a token (by its hash) to the user named `username`, if any.
    fn add_token(&self, username: &str, token_hash: &[u8]) -> Result<Option<User>, StoreError>;

    /// Revokes every token of the user named `username`, if any; returns the
    /// user and how many tokens were revoked.
    fn revoke_tokens(&self, username: &str) -> Result<Option<(User, usize)>, StoreError>;

    /// The user a token (by its hash) belongs to, if it is valid.
    fn user_by_token(&self, token_hash: &[u8]) -> Result<Option<User>, StoreError>;
}

/// The webhook outbox, as the dispatcher reads and updates it. Deliveries
/// are claimed before an attempt: a claim moves the delivery's due time to
/// the end of a lease, so no other dispatcher (another replica on the same
/// database) sends it while the attempt runs; the outcome then sets it.
pub trait Deliveries {
    /// The URLs that still have pending deliveries (configured or not).
    fn pending_webhook_urls(&self) -> Result<Vec<String>, StoreError>;

    /// Claims up to `limit` pending deliveries to `url` due by `now`,
    /// soonest first, until `lease_until`.
    fn claim_deliveries(
        &self,
        url: &str,
        limit: usize,
        now: i64,
        lease_until: i64,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// When the soonest pending delivery to `url` is due, if any is.
    fn next_delivery_due(&self, url: &str) -> Result<Option<i64>, StoreError>;

    /// Gives claimed deliveries back, due at `now` (an attempt abandoned at
    /// shutdown).
    fn release_deliveries(&self, url: &str, events: &[i64], now: i64) -> Result<(), StoreError>;

    /// Ends a delivery after an attempt. `Gone` also drops every other
    /// pending delivery to the same URL; returns how many were dropped.
    fn finish_delivery(
        &self,
        event: i64,
        url: &str,
        end: DeliveryEnd,
        now: i64,
    ) -> Result<usize, StoreError>;

    /// Counts a failed attempt and schedules the next one at `at`.
    fn retry_delivery(&self, event: i64, url: &str, at: i64) -> Result<(), StoreError>;

    /// Pending (event, URL) pairs, and the time of the oldest one's event.
    fn webhook_backlog(&self) -> Result<(u64, Option<i64>), StoreError>;
}

/// What operations need: readiness, pool gauges, a clean stop.
pub trait Operations {
    /// A round trip to the database within `limit`, for readiness checks.
    fn ping(&self, limit: Duration) -> Result<(), StoreError>;

    /// (pool, connections in use, idle connections) of each pool.
    fn pool_states(&self) -> Vec<(&'static str, u32, u32)>;

    /// Writes and commits since the store opened (their ratio is the
    /// batching achieved).
    fn write_counts(&self) -> (u64, u64);

    /// Leaves the database tidy for a clean stop.
    fn checkpoint(&self) -> Result<(), StoreError>;
}

/// A user as `articles export` writes it: never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedUser {
    pub id: i64,
    pub username: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// Where an export goes, row by row, users first.
pub trait ExportSink {
    fn user(&mut self, user: &ExportedUser) -> std::io::Result<()>;
    fn article(&mut self, article: &Article) -> std::io::Result<()>;
}

/// Why an export stopped.
#[derive(Debug)]
pub enum ExportError {
    /// Reading the database failed.
    Store(StoreError),
    /// Writing the output failed.
    Write(std::io::Error),
}

impl From<StoreError> for ExportError {
    fn from(err: StoreError) -> ExportError {
        ExportError::Store(err)
    }
}

/// What an import did with one article.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Added, with this id.
    Added(i64),
    /// Not added: an article has this id already.
    Exists(i64),
}

/// An import under way: one write transaction, kept only if the whole
/// import succeeds.
pub trait Importer {
    /// Adds `user` unless a user has its name (in any case); returns the
    /// id of the user of that name.
    fn user(&mut self, user: &ImportedUser) -> Result<i64, StoreError>;

    /// Adds `article` unless an article has its id, its author first if no
    /// user has that name.
    fn article(&mut self, article: &ImportedArticle) -> Result<Imported, StoreError>;

    /// Users added so far, authors included.
    fn users_added(&self) -> u64;
}

/// Why an import stopped. Nothing of it is kept.
#[derive(Debug)]
pub enum ImportError {
    /// The database failed.
    Store(StoreError),
    /// The input is wrong: where and how.
    Input(String),
}

impl From<StoreError> for ImportError {
    fn from(err: StoreError) -> ImportError {
        ImportError::Store(err)
    }
}

/// What an import runs inside its transaction (see `Transfer::import`).
pub type ImportWork<'a> = dyn FnMut(&mut dyn Importer) -> Result<(), ImportError> + 'a;

/// Data in and out.
pub trait Transfer {
    /// Every user, then every article, each in id order, from one snapshot
    /// and a row at a time (memory does not grow with the data).
    fn export(&self, sink: &mut dyn ExportSink) -> Result<(), ExportError>;

    /// Runs `work` on an `Importer` in one write transaction; commits it if
    /// `work` succeeds, then the ids to come follow the largest imported,
    /// and the change feed's horizon has moved past every event so far
    /// (no event is recorded per article: followers get a reset). Nothing
    /// is kept if `work` fails.
    fn import(&self, work: &mut ImportWork<'_>) -> Result<(), ImportError>;
}

/// One storage backend: everything handlers, the dispatcher and the admin
/// commands need, and nothing about SQL.
pub trait Backend:
    Articles + IdempotencyKeys + Users + Deliveries + Events + Operations + Transfer + Send + Sync
{
}

impl<T> Backend for T where
    T: Articles
        + IdempotencyKeys
        + Users
        + Deliveries
        + Events
        + Operations
        + Transfer
        + Send
        + Sync
{
}

/// The database the service runs on: the one boundary between the rest of
/// the crate and SQL. Every operation of either backend goes through here.
pub struct Store {
    backend: Box<dyn Backend>,
    outbox: Outbox,
    /// The newest events, read once for every follower.
    tail: Tail,
}

/// How a store is opened.
pub struct Options {
    /// Reading connections in the pool; each backend adds one connection
    /// for writes (SQLite's single writer).
    pub connections: u32,
    /// The webhook URLs every change queues a delivery for.
    pub webhooks: Vec<String>,
    /// Called by a thread about to wait for its write's group commit
    /// (SQLite): the server hands that thread's turn to another request
    /// meanwhile. The store itself knows nothing of the server's threads.
    pub waiting: fn(),
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connections: 1,
            webhooks: Vec::new(),
            waiting: || {},
        }
    }
}

/// Whether `location` names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `location`:
    /// a `postgres://` URL, or a SQLite path (`:memory:` for a private
    /// in-memory database).
    pub fn open(location: &str, options: Options) -> Result<Store, StoreError> {
        let connections = options.connections;
        let backend: Box<dyn Backend> = if is_postgres(location) {
            open_postgres(location, connections)?
        } else {
            Box::new(sqlite::SqliteStore::open(
                location,
                connections,
                options.waiting,
            )?)
        };
        Ok(Store {
            backend,
            outbox: Outbox::new(options.webhooks),
            tail: Tail::default(),
        })
    }

    /// Applies pending migrations to the database at `location` without
    /// opening pools; returns the schema version before and after.
    pub fn migrate(location: &str) -> Result<(u32, u32), StoreError> {
        if is_postgres(location) {
            migrate_postgres(location)
        } else {
            sqlite::SqliteStore::migrate(location)
        }
    }

    /// The webhook outbox that writes queue their deliveries in.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// How many operations found the database busy or waited too long for a
    /// connection, since the process started.
    pub fn busy_errors() -> u64 {
        BUSY_ERRORS.load(Ordering::Relaxed)
    }

    /// See `Articles::article`.
    pub fn article(&self, id: i64) -> Result<Option<Article>, StoreError> {
        self.backend.article(id)
    }

    /// See `Articles::list_articles`.
    pub fn list_articles(&self, query: &ArticleQuery) -> Result<Listing, StoreError> {
        self.backend.list_articles(query)
    }

    /// The change feed's news in this process.
    pub fn feed(&self) -> &Feed {
        self.outbox.feed()
    }

    /// See `Events::events_after`; the newest events come from memory
    /// (`Tail`), read once from the database for every follower.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<EventsRead, StoreError> {
        self.tail.read(after, limit, |after, limit| {
            self.backend.events_after(after, limit)
        })
    }

    /// See `Events::feed_position`; also publishes it to `feed()`.
    pub fn feed_position(&self) -> Result<i64, StoreError> {
        let newest = self.backend.feed_position()?;
        self.feed().publish(newest);
        Ok(newest)
    }

    /// See `Transfer::export`.
    pub fn export(&self, sink: &mut dyn ExportSink) -> Result<(), ExportError> {
        self.backend.export(sink)
    }

    /// See `Transfer::import`.
    pub fn import(&self, work: &mut ImportWork<'_>) -> Result<(), ImportError> {
        self.backend.import(work)
    }

    /// See `Events::prune_events`; forgets the events `Tail` keeps.
    pub fn prune_events(&self, before: i64, batch: usize) -> Result<usize, StoreError> {
        let pruned = self.backend.prune_events(before, batch);
        // Whatever this call deleted, another replica may have pruned
        // meanwhile: the newest events are read again (once) from here on.
        self.tail.clear();
        pruned
    }

    /// See `Articles::create_article`.
    pub fn create_article(
        &self,
        change: &ArticleChange,
        author: Option<&User>,
    ) -> Result<Article, StoreError> {
        self.backend.create_article(change, author, &self.outbox)
    }

    /// `Articles::update_article` with a check that fails with the caller's
    /// own error type, returned as it was.
    pub fn update_article<E: From<StoreError> + Send>(
        &self,
        id: i64,
        decide: impl FnOnce(&Article) -> Result<ArticleChange, E> + Send,
    ) -> Result<Option<Article>, E> {
        let mut check = Adapted::new(decide);
        let result = self
            .backend
            .update_article(id, &self.outbox, &mut |article| check.call(article));
        check.outcome(result)
    }

    /// `Articles::delete_article` with a guard that fails with the caller's
    /// own error type.
    pub fn delete_article<E: From<StoreError> + Send>(
        &self,
        id: i64,
        guard: impl FnOnce(&Article) -> Result<(), E> + Send,
    ) -> Result<Option<Article>, E> {
        let mut check = Adapted::new(guard);
        let result = self
            .backend
            .delete_article(id, &self.outbox, &mut |article| check.call(article));
        check.outcome(result)
    }

    /// `IdempotencyKeys::create_article_once` with a `decide` that fails
    /// with the caller's own error type.
    pub fn create_article_once<E: From<StoreError> + Send>(
        &self,
        request: &KeyedRequest<'_>,
        author: Option<&User>,
        decide: impl FnOnce() -> Result<ArticleChange, E> + Send,
        respond: impl FnOnce(&Article) -> SavedResponse + Send,
    ) -> Result<Creation, E> {
        let mut check = Adapted::new(|()| decide());
        let mut respond = Some(respond);
        let result = self.backend.create_article_once(
            request,
            author,
            &self.outbox,
            &mut || check.call(()),
            &mut |article| respond.take().expect("respond is called once")(article),
        );
        check.outcome(result)
    }

    /// See `Users::create_user`.
    pub fn create_user(&self, username: &str, token_hash: &[u8]) -> Result<User, StoreError> {
        self.backend.create_user(username, token_hash)
    }

    /// See `Users::add_token`.
    pub fn add_token(&self, username: &str, token_hash: &[u8]) -> Result<Option<User>, StoreError> {
        self.backend.add_token(username, token_hash)
    }

    /// See `Users::revoke_tokens`.
    pub fn revoke_tokens(&self, username: &str) -> Result<Option<(User, usize)>, StoreError> {
        self.backend.revoke_tokens(username)
    }

    /// See `Users::user_by_token`.
    pub fn user_by_token(&self, token_hash: &[u8]) -> Result<Option<User>, StoreError> {
        self.backend.user_by_token(token_hash)
    }

    /// The webhook deliveries, for the dispatcher (see `Deliveries`).
    pub fn deliveries(&self) -> &dyn Deliveries {
        self.backend.as_ref()
    }

    /// See `Operations::ping`.
    pub fn ping(&self, limit: Duration) -> Result<(), StoreError> {
        self.backend.ping(limit)
    }

    /// See `Operations::pool_states`.
    pub fn pool_states(&self) -> Vec<(&'static str, u32, u32)> {
        self.backend.pool_states()
    }

    /// See `Operations::write_counts`.
    pub fn write_counts(&self) -> (u64, u64) {
        self.backend.write_counts()
    }

    /// See `Operations::checkpoint`.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.backend.checkpoint()
    }
}

/// A caller's one-shot check, called by a backend through `Check`: its
/// error is kept here and the backend sees `StoreError::Rejected`.
struct Adapted<F, E> {
    check: Option<F>,
    refusal: Option<E>,
}

impl<F, E> Adapted<F, E> {
    fn new(check: F) -> Self {
        Adapted {
            check: Some(check),
            refusal: None,
        }
    }

    /// Calls the check (once), keeping its refusal.
    fn call<A, T>(&mut self, arg: A) -> Result<T, StoreError>
    where
        F: FnOnce(A) -> Result<T, E>,
    {
        let check = self
            .check
            .take()
            .ok_or_else(|| StoreError::internal("a check inside a transaction was called twice"))?;
        check(arg).map_err(|refusal| {
            self.refusal = Some(refusal);
            StoreError::Rejected
        })
    }

    /// The caller's error if its check refused, else the backend's result.
    fn outcome<T>(self, result: Result<T, StoreError>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        match (result, self.refusal) {
            (_, Some(refusal)) => Err(refusal),
            (result, None) => result.map_err(E::from),
        }
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(location: &str, connections: u32) -> Result<Box<dyn Backend>, StoreError> {
    Ok(Box::new(postgres::PgStore::open(
        location,
        connections + 1,
    )?))
}

#[cfg(feature = "postgres")]
fn migrate_postgres(location: &str) -> Result<(u32, u32), StoreError> {
    postgres::PgStore::migrate(location)
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &str, _: u32) -> Result<Box<dyn Backend>, StoreError> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn migrate_postgres(_: &str) -> Result<(u32, u32), StoreError> {
    Err(no_postgres())
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> StoreError {
    StoreError::unavailable(
        "this articles was built without PostgreSQL support: rebuild it with \
         `cargo build --release --features postgres`",
    )
}
