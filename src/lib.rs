//! `articles`: an article REST API over SQLite (or PostgreSQL, for several
//! replicas), in one small binary.
//!
//! # Threads and the path of a request
//!
//! ```text
//!  accept thread ──► connection threads ──► request queue ──► N workers ──► pools
//!  (ours: socket     (ours, one per         (one, shared)     (--workers    readers (--pool-size)
//!   options, errors)  connection; tiny_http                    turns)        one writer
//!                     parses HTTP/1.1)
//! ```
//!
//! A connection thread hands its connection's requests to the queue one at
//! a time, reading the next once a worker has answered the last
//! (`connection`), so one client can hold at most one worker. Reads (`GET`,
//! `HEAD`) it answers itself instead, up to `--workers` at once and while at
//! most 64 connections are open (`server::Inline`): that saves a thread
//! switch per request.
//!
//! `--workers` is the number of requests worked on at once by the workers.
//! The pool has more threads than that (started as concurrent writes need
//! them), and they take turns (`turns`): a worker that waits on its
//! write's group commit gives its turn to the next request, so that more
//! writes share one commit (`store/sqlite/batch.rs`).
//!
//! A worker (or a connection thread, for a read) takes a request and runs
//! `server::handle`: it picks the request
//! id, calls `router::dispatch` under `catch_unwind` (a panic is a 500 for
//! that request only), renders any `ApiError` as problem+json, writes the
//! response and logs one access line. `router::dispatch` matches
//! `(method, path)` to a handler in `handlers`; handlers validate input
//! (`article`, `listing`), call the `store` (which owns every SQL
//! statement), and shape a `Reply`.
//!
//! Checks that must not race another writer (ownership, `If-Match`) run in
//! a closure the store calls inside the write transaction, on the article as
//! it is there (`conditional`). A `POST` with an `Idempotency-Key` is
//! claimed in `App::in_flight` while it runs (a retry meanwhile is a 409)
//! and saves its response in the same transaction as the article
//! (`idempotency`, `Store::create_article_once`).
//!
//! # Webhooks
//!
//! Every create, update and delete writes its webhook event (one row per
//! configured URL) in the same write transaction as the change
//! (`store/sqlite/outbox.rs`, `store/postgres/outbox.rs`), then
//! wakes the `webhooks` dispatcher thread, which sends each delivery from
//! a short-lived attempt thread of its own and records the outcome. No
//! request worker ever waits on a receiver. See `webhooks` for the diagram.

pub mod admin;
pub mod article;
pub mod auth;
pub mod conditional;
pub mod config;
mod connection;
pub mod cors;
pub mod error;
pub mod handlers;
pub mod idempotency;
pub mod listing;
pub mod logging;
pub mod metrics;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod signals;
pub mod store;
pub mod turns;
pub mod util;
pub mod webhooks;

use std::sync::atomic::{AtomicBool, Ordering};

use config::Config;
use idempotency::InFlight;
use metrics::Metrics;
use store::Store;
use webhooks::Outbox;

/// Everything a handler can reach: configuration, database, metrics, the
/// idempotency keys in flight, the webhook outbox, and whether a shutdown
/// is under way.
pub struct App {
    /// The server's settings.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Request counters and latencies.
    pub metrics: Metrics,
    /// `Idempotency-Key`s whose first request is being processed.
    pub in_flight: InFlight,
    /// Where writes queue their webhook events.
    pub outbox: Outbox,
    shutting_down: AtomicBool,
}

impl App {
    /// Opens (and migrates) the database named by `config`.
    pub fn open(config: Config) -> Result<App, store::StoreError> {
        let store = Store::open(&config.db, config.pool_size)?;
        Ok(App {
            outbox: Outbox::new(config.webhooks.clone()),
            config,
            store,
            metrics: Metrics::default(),
            in_flight: InFlight::default(),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// Marks the start of a shutdown: readiness answers 503 from now on.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }

    /// Whether a shutdown is under way.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}
