//! `ApiError`, the one error type of every handler, and its single rendering
//! as `application/problem+json` (RFC 9457).
//!
//! 4xx details are written for the client. 5xx details go to the log only;
//! the client gets a generic sentence and the request id that finds the log
//! line.

use std::fmt;

use serde::Serialize;

use crate::http::response::{reason_phrase, Reply, PROBLEM_JSON};
use crate::model::{FieldError, Invalid};
use crate::store::StoreError;

/// Seconds a client is asked to wait after a 503, 507 or 409.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// Everything a request can fail with, by status.
#[derive(Debug)]
pub enum ApiError {
    /// 400: a malformed request: a body that is not UTF-8, JSON or a JSON
    /// object, or cannot be read; a bad `Host`, `Content-Length` or
    /// `Idempotency-Key`.
    BadRequest(String),
    /// 401: a token is missing where one is needed (`invalid: false`), or is
    /// malformed, unknown or revoked (`invalid: true`).
    Unauthorized {
        /// The sentence for the client.
        detail: &'static str,
        /// Whether a token was sent but is not valid.
        invalid: bool,
    },
    /// 403: a valid token that may not do this.
    Forbidden(&'static str),
    /// 404: no such article or no such route.
    NotFound(&'static str),
    /// 405: the path exists, not for this method; carries the `Allow` value.
    MethodNotAllowed(String),
    /// 409: the request conflicts with one in progress (an
    /// `Idempotency-Key` still in flight); sent with `Retry-After`.
    Conflict(&'static str),
    /// 408: the client stopped sending its body.
    Timeout,
    /// 411: a write with neither `Content-Length` nor chunked encoding.
    LengthRequired,
    /// 412: `If-Match` or `If-None-Match` says not to go on.
    PreconditionFailed(&'static str),
    /// 413: the body is larger than the limit (in bytes).
    TooLarge(u64),
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: one entry per invalid field or parameter.
    Validation(Vec<FieldError>),
    /// 503: the database is busy or unreachable, or the server is shutting
    /// down; detail for the client.
    Unavailable(&'static str),
    /// 507: the disk is full.
    InsufficientStorage,
    /// 500: a bug. The message is logged, never sent.
    Internal(String),
    /// 400, 408, 414, 417, 431 or 505: the HTTP layer refused the request
    /// head before it reached a handler; 503: one connection too many.
    /// Sent with `Connection: close` (and a 503 with `Retry-After`).
    Refused {
        /// The status.
        status: u16,
        /// The sentence for the client.
        detail: &'static str,
    },
}

impl ApiError {
    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Timeout => 408,
            ApiError::Conflict(_) => 409,
            ApiError::LengthRequired => 411,
            ApiError::PreconditionFailed(_) => 412,
            ApiError::TooLarge(_) => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::Validation(_) => 422,
            ApiError::Unavailable(_) => 503,
            ApiError::InsufficientStorage => 507,
            ApiError::Internal(_) => 500,
            ApiError::Refused { status, .. } => *status,
        }
    }

    /// The sentence sent as `detail`.
    fn detail(&self) -> String {
        match self {
            ApiError::BadRequest(detail) => detail.clone(),
            ApiError::Unauthorized { detail, .. }
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::PreconditionFailed(detail)
            | ApiError::Unavailable(detail)
            | ApiError::Refused { detail, .. } => (*detail).to_owned(),
            ApiError::MethodNotAllowed(allow) => {
                format!("Method not allowed here; allowed: {allow}")
            }
            ApiError::Timeout => "The request body was not received in time".to_owned(),
            ApiError::LengthRequired => {
                "A request body needs Content-Length or chunked encoding".to_owned()
            }
            ApiError::TooLarge(limit) => {
                format!("The request body is larger than the limit of {limit} bytes")
            }
            ApiError::UnsupportedMediaType => {
                "The request body must be JSON, with Content-Type: application/json".to_owned()
            }
            ApiError::Validation(_) => "Validation failed".to_owned(),
            ApiError::InsufficientStorage => {
                "The server's disk is full; the write was not made".to_owned()
            }
            ApiError::Internal(_) => {
                "Internal server error; quote the request_id when reporting it".to_owned()
            }
        }
    }

    /// Renders the error as a problem+json reply carrying `request_id`.
    pub fn into_reply(self, request_id: &str) -> Reply {
        let status = self.status();
        let body = Problem {
            kind: "about:blank",
            title: reason_phrase(status),
            status,
            detail: self.detail(),
            errors: match &self {
                ApiError::Validation(errors) => Some(errors),
                _ => None,
            },
            request_id,
        };
        let body = serde_json::to_vec(&body).expect("serializable problem");
        let reply = Reply::with_body(status, PROBLEM_JSON, body);
        match self {
            ApiError::MethodNotAllowed(allow) => reply.header("Allow", allow),
            ApiError::Unauthorized { invalid: false, .. } => {
                reply.header("WWW-Authenticate", "Bearer")
            }
            ApiError::Unauthorized { invalid: true, .. } => {
                reply.header("WWW-Authenticate", "Bearer error=\"invalid_token\"")
            }
            ApiError::Unavailable(_) | ApiError::InsufficientStorage | ApiError::Conflict(_) => {
                reply.header("Retry-After", RETRY_AFTER_SECONDS.to_string())
            }
            ApiError::Refused { status: 503, .. } => reply
                .header("Retry-After", RETRY_AFTER_SECONDS.to_string())
                .header("Connection", "close"),
            ApiError::TooLarge(_) | ApiError::Timeout | ApiError::Refused { .. } => {
                reply.header("Connection", "close")
            }
            _ => reply,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Internal(message) => write!(f, "internal error: {message}"),
            other => write!(f, "{} {}", other.status(), other.detail()),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(Invalid(errors): Invalid) -> ApiError {
        ApiError::Validation(errors)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match &err {
            StoreError::Busy(_) => {
                ApiError::Unavailable("The database is busy; retry after the indicated delay")
            }
            StoreError::Unavailable(_) => ApiError::Unavailable(
                "The database is unavailable; retry after the indicated delay",
            ),
            StoreError::Full => ApiError::InsufficientStorage,
            // The same Idempotency-Key through two replicas at once:
            // retrying gets the answer the other one saved.
            StoreError::KeyInUse => {
                ApiError::Conflict("The request conflicted with a concurrent one; retry it")
            }
            StoreError::Schema(_)
            | StoreError::Internal(_)
            | StoreError::Duplicate(_)
            | StoreError::UsernameTaken(_) => ApiError::Internal(err.to_string()),
            // `Store` returns the check's own error instead.
            StoreError::Rejected => ApiError::Internal("a refused write lost its reason".into()),
        }
    }
}

/// The wire shape of an error.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a Vec<FieldError>>,
    request_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn maps_each_error_to_its_status() {
        assert_eq!(ApiError::BadRequest("x".into()).status(), 400);
        assert_eq!(
            ApiError::Unauthorized {
                detail: "x",
                invalid: true
            }
            .status(),
            401
        );
        assert_eq!(ApiError::Forbidden("x").status(), 403);
        assert_eq!(ApiError::NotFound("x").status(), 404);
        assert_eq!(ApiError::Conflict("x").status(), 409);
        assert_eq!(ApiError::MethodNotAllowed("GET".into()).status(), 405);
        assert_eq!(ApiError::LengthRequired.status(), 411);
        assert_eq!(ApiError::PreconditionFailed("x").status(), 412);
        assert_eq!(ApiError::TooLarge(1).status(), 413);
        assert_eq!(ApiError::UnsupportedMediaType.status(), 415);
        assert_eq!(ApiError::Validation(vec![]).status(), 422);
        assert_eq!(ApiError::Unavailable("x").status(), 503);
        assert_eq!(ApiError::Internal("x".into()).status(), 500);
    }

    #[test]
    fn renders_problem_json_with_request_id() {
        let reply = ApiError::NotFound("Article not found").into_reply("req-1");
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header_value("content-type"), Some(PROBLEM_JSON));
        let json = body(&reply);
        assert_eq!(json["type"], "about:blank");
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["status"], 404);
        assert_eq!(json["detail"], "Article not found");
        assert_eq!(json["request_id"], "req-1");
        assert!(json.get("errors").is_none());
    }

    #[test]
    fn validation_lists_every_problem() {
        let reply = ApiError::Validation(vec![
            FieldError::new("title", "must be 1 to 200 characters"),
            FieldError::new("tags[0]", "must not be blank"),
        ])
        .into_reply("r");
        let json = body(&reply);
        assert_eq!(json["detail"], "Validation failed");
        assert_eq!(json["errors"][1]["field"], "tags[0]");
    }

    #[test]
    fn internal_details_never_reach_the_client() {
        let reply = ApiError::Internal("disk I/O error at /secret/path".into()).into_reply("r");
        let text = String::from_utf8(reply.body).unwrap();
        assert!(!text.contains("/secret/path"));
    }

    #[test]
    fn unauthorized_carries_www_authenticate() {
        let missing = ApiError::Unauthorized {
            detail: "x",
            invalid: false,
        }
        .into_reply("r");
        assert_eq!(missing.header_value("www-authenticate"), Some("Bearer"));
        let invalid = ApiError::Unauthorized {
            detail: "x",
            invalid: true,
        }
        .into_reply("r");
        assert!(invalid
            .header_value("www-authenticate")
            .unwrap()
            .starts_with("Bearer "));
    }

    #[test]
    fn unavailable_and_conflict_carry_retry_after_and_405_carries_allow() {
        let reply = ApiError::Unavailable("busy").into_reply("r");
        assert_eq!(reply.header_value("retry-after"), Some("1"));
        let reply = ApiError::Conflict("in flight").into_reply("r");
        assert_eq!(reply.header_value("retry-after"), Some("1"));
        let reply = ApiError::MethodNotAllowed("GET, HEAD".into()).into_reply("r");
        assert_eq!(reply.header_value("allow"), Some("GET, HEAD"));
    }
}
