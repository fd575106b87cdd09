//! What an operator's tooling calls: liveness, readiness, metrics and the
//! OpenAPI document.

use std::time::Duration;

use serde_json::json;

use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response::{Reply, JSON};
use crate::http::App;
use crate::metrics::Snapshot;
use crate::store::Store;
use crate::util::time::now_millis;

/// How long readiness waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `Content-Type` of `/metrics`.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The OpenAPI 3.1 document, embedded at build time.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// `GET /healthz`: the process answers.
pub fn healthz(_app: &App, _req: &mut Req<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &json!({"status": "ok"})))
}

/// `GET /readyz`: the database answers within `READY_TIMEOUT` (for SQLite,
/// from the files it was opened on) and no shutdown is under way.
pub fn readyz(app: &App, _req: &mut Req<'_>) -> Result<Reply, ApiError> {
    if app.shutting_down() {
        return Err(ApiError::Unavailable("The server is shutting down"));
    }
    if let Err(err) = app.store.ping(READY_TIMEOUT) {
        log::warn!("readiness check failed: {err}");
        return Err(ApiError::Unavailable("The database does not answer"));
    }
    Ok(Reply::json(200, &json!({"status": "ready"})))
}

/// `GET /metrics`: Prometheus text format 0.0.4.
pub fn metrics(app: &App, _req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let webhook_backlog = match app.store.deliveries().webhook_backlog() {
        Ok((pending, oldest)) => {
            let age = oldest.map_or(0.0, |at| (now_millis() - at).max(0) as f64 / 1000.0);
            Some((pending, age))
        }
        Err(err) => {
            log::warn!("metrics: reading the webhook backlog failed: {err}");
            None
        }
    };
    let snapshot = Snapshot {
        pools: app.store.pool_states(),
        db_busy_total: Store::busy_errors(),
        db_writes_commits: app.store.write_counts(),
        webhook_backlog,
    };
    let body = app.metrics.render(&snapshot).into_bytes();
    Ok(Reply::with_body(200, PROMETHEUS_TEXT, body))
}

/// `GET /openapi.json`.
pub fn openapi(_app: &App, _req: &mut Req<'_>) -> Result<Reply, ApiError> {
    Ok(Reply::with_body(200, JSON, OPENAPI.as_bytes().to_vec()))
}
