//! The integration tests that need no process of their own: each starts the
//! library's server in this process (`in_process`), on port 0 with a
//! temporary database, and speaks HTTP/1.1 to it over real sockets. A module
//! per area. The tests that must own the server's process are in the
//! `process` binary.

#[path = "../support/browser.rs"]
mod browser;
#[path = "../support/in_process.rs"]
mod in_process;
#[path = "../support/mod.rs"]
mod support;

mod api;
mod auth;
mod conditional;
mod events;
mod hostile;
mod http_layer;
mod idempotency;
mod in_browser;
mod ops;
mod pages;
mod reliability_clients;
mod reliability_http;
mod reliability_input;
mod reliability_load;
mod replicas;
mod webhooks;
