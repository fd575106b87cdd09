//! `articles`: an article REST API over SQLite, in one small binary.
//!
//! # Threads and the path of a request
//!
//! ```text
//!  accept thread ──► connection threads ──► request queue ──► N workers ──► pools
//!  (ours: socket     (tiny_http: one per    (one, shared)     (--workers)    readers (--pool-size)
//!   options, errors)  connection, parses                                     one writer
//!                     HTTP/1.1)
//! ```
//!
//! A worker takes a request and runs `server::handle`: it picks the request
//! id, calls `router::dispatch` under `catch_unwind` (a panic is a 500 for
//! that request only), renders any `ApiError` as problem+json, writes the
//! response and logs one access line. `router::dispatch` matches
//! `(method, path)` to a handler in `handlers`; handlers validate input
//! (`article`, `listing`), call the `store` (which owns every SQL
//! statement), and shape a `Reply`.

pub mod admin;
pub mod article;
pub mod auth;
pub mod config;
pub mod cors;
pub mod error;
pub mod handlers;
mod ids;
pub mod listing;
pub mod metrics;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod signals;
pub mod store;
pub mod time;
pub mod urlencoded;

use std::sync::atomic::{AtomicBool, Ordering};

use config::Config;
use metrics::Metrics;
use store::Store;

/// Everything a handler can reach: configuration, database, metrics, and
/// whether a shutdown is under way.
pub struct App {
    /// The server's settings.
    pub config: Config,
    /// The database.
    pub store: Store,
    /// Request counters and latencies.
    pub metrics: Metrics,
    shutting_down: AtomicBool,
}

impl App {
    /// Opens (and migrates) the database named by `config`.
    pub fn open(config: Config) -> Result<App, store::StoreError> {
        let store = Store::open(&config.db, config.pool_size)?;
        Ok(App {
            config,
            store,
            metrics: Metrics::default(),
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
