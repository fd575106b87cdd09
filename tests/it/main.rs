//! The integration tests, as one test binary: a module per area.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod auth;
mod cli;
mod conditional;
mod hostile;
mod idempotency;
mod ops;
mod reliability_clients;
mod reliability_crash;
mod reliability_faults;
mod reliability_http;
mod reliability_input;
mod reliability_load;
mod reliability_memory;
mod replicas;
mod webhook_retries;
mod webhooks;
