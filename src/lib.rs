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
pub mod error;
pub mod handlers;
mod ids;
pub mod listing;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod store;
pub mod time;
pub mod urlencoded;

use config::Config;
use store::Store;

/// Everything a handler can reach: the configuration and the database.
pub struct App {
    /// The server's settings.
    pub config: Config,
    /// The database.
    pub store: Store,
}

impl App {
    /// Opens (and migrates) the database named by `config`.
    pub fn open(config: Config) -> Result<App, store::StoreError> {
        let store = Store::open(&config.db, config.pool_size)?;
        Ok(App { config, store })
    }
}
