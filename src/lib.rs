//! `articles`: an article REST API over SQLite (or PostgreSQL, for several
//! replicas), in one small binary.
//!
//! The modules, lowest layer first; each uses only those above it in this
//! list (`ARCHITECTURE.md` has the map, the threads and where to make common
//! changes):

/// The administrative commands: `user add`, `token new`, `token revoke`.
pub mod admin;
/// The command line: subcommands, flags, `ARTICLES_*` variables.
pub mod config;
/// The change feed's watcher: news from other processes, and pruning.
pub(crate) mod feed;
/// The HTTP layer: request, response, errors, the route table, handlers.
pub(crate) mod http;
/// The log: one-line records, access lines, buffered to standard error.
pub mod logging;
/// Request counters and latencies, rendered for Prometheus.
pub(crate) mod metrics;
/// The domain: articles, users, queries, events, and their validation.
pub(crate) mod model;
/// The server: accept loop, connection threads, workers, the wire.
pub mod server;
/// SIGTERM and SIGINT, waited for on a thread of their own.
pub mod signals;
/// The storage layer: the only module that knows SQL (SQLite, PostgreSQL).
pub(crate) mod store;
/// Time, hand-written JSON, query strings, request ids: no crate knowledge.
pub(crate) mod util;
/// Outgoing webhooks: the dispatcher that sends what the store queued.
pub(crate) mod webhooks;

pub use store::sqlite::configure_process;
