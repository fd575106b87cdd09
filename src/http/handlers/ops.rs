//! What an operator's tooling calls: liveness, readiness, metrics and the
//! OpenAPI document.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::json;

use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response::{Reply, JSON};
use crate::http::App;
use crate::metrics::Snapshot;
use crate::model::AuthMode;
use crate::store::Store;
use crate::util::json::{minified_len, minify};
use crate::util::time::now_millis;

/// How long readiness waits for the database.
pub const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `Content-Type` of `/metrics`.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The OpenAPI 3.1 document, embedded at build time.
/// Pretty-printed in the repository, stored without its whitespace (75 KB
/// instead of 128 KB).
pub static OPENAPI: &str = match std::str::from_utf8(&OPENAPI_BYTES) {
    Ok(text) => text,
    Err(_) => panic!("openapi.json is UTF-8"),
};
const OPENAPI_PRETTY: &[u8] = include_bytes!("../openapi.json");
static OPENAPI_BYTES: [u8; minified_len(OPENAPI_PRETTY)] = minify(OPENAPI_PRETTY);

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

/// `GET /openapi.json`: the document as this server runs it. With `--auth
/// required` the writes' `security` no longer offers the anonymous `{}`, so
/// a tool knows (and checks) that they need the bearer token.
pub fn openapi(app: &App, _req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let document = match app.config.auth {
        AuthMode::Open => OPENAPI,
        AuthMode::Required => required_document(),
    };
    Ok(Reply::with_body(200, JSON, document.as_bytes().to_vec()))
}

/// An operation's `security` that makes the bearer token optional, as the
/// document spells it (a unit test holds the spelling), and the same
/// without the anonymous alternative.
const OPTIONAL_BEARER: &str = "\"security\":[{},{";
const REQUIRED_BEARER: &str = "\"security\":[{";

/// The document for `--auth required`.
fn required_document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // The document's own default (before `paths`) stays as it is.
        let (head, paths) = OPENAPI.split_at(OPENAPI.find("\"paths\":").expect("paths"));
        format!("{head}{}", paths.replace(OPTIONAL_BEARER, REQUIRED_BEARER))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// In auth mode `required` exactly the writes change: their token is
    /// required rather than optional.
    #[test]
    fn the_required_document_requires_the_token_for_writes_only() {
        let mut expected: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut writes = 0;
        for item in expected["paths"].as_object_mut().unwrap().values_mut() {
            for (method, op) in item.as_object_mut().unwrap() {
                if ["post", "put", "patch", "delete"].contains(&method.as_str()) {
                    assert_eq!(op["security"], json!([{}, {"bearer": []}]), "{method}");
                    op["security"] = json!([{"bearer": []}]);
                    writes += 1;
                }
            }
        }
        assert_eq!(writes, 4);
        let required: Value = serde_json::from_str(required_document()).unwrap();
        assert_eq!(required, expected);
    }
}
