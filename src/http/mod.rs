//! The HTTP layer: what a request is to a handler (`request`), what it
//! answers (`response`, `error`), which handler serves which route
//! (`routes`), and the cross-cutting rules handlers apply: auth policy,
//! CORS, conditional requests, idempotency, pagination links.
//!
//! Handlers are plain functions from a request to a reply: they parse and
//! validate input, call the store and shape the reply. They hold no SQL
//! and never call back into the server.

pub(crate) mod auth;
pub(crate) mod conditional;
pub(crate) mod cors;
pub(crate) mod error;
#[cfg(test)]
mod fuzz;
pub(crate) mod handlers;
pub(crate) mod idempotency;
pub(crate) mod pagination;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod routes;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{self, Store, StoreError};
use idempotency::InFlight;

/// Everything a handler can reach: configuration, database, metrics, the
/// idempotency keys in flight, and whether a shutdown is under way.
pub struct App {
    /// The server's settings.
    pub(crate) config: Config,
    /// The database.
    pub(crate) store: Arc<Store>,
    /// Request counters and latencies.
    pub(crate) metrics: Arc<Metrics>,
    /// `Idempotency-Key`s whose first request is being processed.
    pub(crate) in_flight: InFlight,
    shutting_down: AtomicBool,
}

impl App {
    /// Opens (and migrates) the database named by `config`. `waiting` is
    /// called by a thread about to wait on its write's group commit (see
    /// `store::Options`).
    pub(crate) fn open(config: Config, waiting: fn()) -> Result<App, StoreError> {
        let options = store::Options {
            connections: config.pool_size,
            webhooks: config.webhooks.iter().map(|url| url.to_string()).collect(),
            waiting,
        };
        let store = Store::open(&config.db, options)?;
        Ok(App {
            config,
            store: Arc::new(store),
            metrics: Arc::new(Metrics::new(&routes::labels())),
            in_flight: InFlight::default(),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// Marks the start of a shutdown: readiness answers 503 from now on,
    /// and the change feed's streams and long polls end.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.store.feed().close();
    }

    /// Whether a shutdown is under way.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}
