//! CORS, only when `--cors-origin` is given. A pure decoration of a reply:
//! the server applies it once, to every response.

use crate::response::Reply;

/// Response headers a browser script may read.
pub const EXPOSE_HEADERS: &str = "X-Total-Count, Link, Location, X-Request-Id, ETag, \
     Idempotency-Replayed, Retry-After, WWW-Authenticate";
/// Request headers a browser script may send.
pub const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, X-Request-Id, If-Match, If-None-Match, Idempotency-Key";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECONDS: u32 = 600;

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsPolicy {
    /// `*`: any origin, answered with the literal `*`.
    Any,
    /// These exact origins (`scheme://host[:port]`).
    Origins(Vec<String>),
}

impl CorsPolicy {
    /// A policy from the configured values; `*` among them means any.
    pub fn new(origins: Vec<String>) -> CorsPolicy {
        if origins.iter().any(|o| o == "*") {
            CorsPolicy::Any
        } else {
            CorsPolicy::Origins(origins)
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request `Origin`: the
    /// configured string, never the request's own bytes.
    fn allow_origin(&self, origin: &str) -> Option<&str> {
        match self {
            CorsPolicy::Any => Some("*"),
            CorsPolicy::Origins(origins) => {
                origins.iter().find(|o| *o == origin).map(String::as_str)
            }
        }
    }
}

/// Whether `text` is a valid `--cors-origin` value: `*`, or
/// `http(s)://host[:port]` with no path, in printable ASCII.
pub fn valid_origin(text: &str) -> bool {
    if text == "*" {
        return true;
    }
    let Some(rest) = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Adds CORS headers to `reply`. `origin` is the request's `Origin`;
/// `preflight` is true for an `OPTIONS` carrying
/// `Access-Control-Request-Method`.
pub fn decorate(policy: &CorsPolicy, origin: Option<&str>, preflight: bool, reply: Reply) -> Reply {
    let reply = reply.header("Vary", "Origin");
    let Some(allowed) = origin.and_then(|origin| policy.allow_origin(origin)) else {
        return reply;
    };
    // Only a preflight's 204 needs the methods (copied before the reply
    // moves on).
    let allow_methods = match preflight && reply.status == 204 {
        true => reply.header_value("Allow").map(str::to_owned),
        false => None,
    };
    let reply = reply
        .header("Access-Control-Allow-Origin", allowed.to_owned())
        .header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    match allow_methods {
        Some(methods) => reply
            .header("Access-Control-Allow-Methods", methods)
            .header("Access-Control-Allow-Headers", ALLOW_HEADERS)
            .header("Access-Control-Max-Age", MAX_AGE_SECONDS.to_string()),
        _ => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins() -> CorsPolicy {
        CorsPolicy::new(vec![
            "https://app.example".into(),
            "http://localhost:3000".into(),
        ])
    }

    #[test]
    fn validates_configured_origins() {
        for good in [
            "*",
            "https://app.example",
            "http://localhost:3000",
            "http://[::1]:8080",
        ] {
            assert!(valid_origin(good), "{good}");
        }
        for bad in [
            "",
            "app.example",
            "https://",
            "https://a/b",
            "https://a b",
            "ftp://x",
            "https://a,b",
        ] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }

    #[test]
    fn a_matching_origin_gets_its_own_value_back() {
        let reply = decorate(
            &origins(),
            Some("https://app.example"),
            false,
            Reply::empty(200),
        );
        assert_eq!(
            reply.header_value("Access-Control-Allow-Origin"),
            Some("https://app.example")
        );
        assert_eq!(reply.header_value("Vary"), Some("Origin"));
        assert_eq!(
            reply.header_value("Access-Control-Expose-Headers"),
            Some(EXPOSE_HEADERS)
        );
        assert_eq!(reply.header_value("Access-Control-Allow-Methods"), None);
    }

    #[test]
    fn other_origins_get_nothing_but_vary() {
        let reply = decorate(
            &origins(),
            Some("https://evil.example"),
            false,
            Reply::empty(200),
        );
        assert_eq!(reply.header_value("Access-Control-Allow-Origin"), None);
        assert_eq!(reply.header_value("Vary"), Some("Origin"));
        let reply = decorate(&origins(), None, false, Reply::empty(200));
        assert_eq!(reply.header_value("Access-Control-Allow-Origin"), None);
    }

    #[test]
    fn any_answers_star() {
        let reply = decorate(
            &CorsPolicy::new(vec!["*".into()]),
            Some("https://x"),
            false,
            Reply::empty(200),
        );
        assert_eq!(reply.header_value("Access-Control-Allow-Origin"), Some("*"));
    }

    #[test]
    fn preflight_gets_methods_headers_and_max_age() {
        let options = Reply::empty(204).header("Allow", "GET, HEAD, POST, OPTIONS");
        let reply = decorate(&origins(), Some("http://localhost:3000"), true, options);
        assert_eq!(
            reply.header_value("Access-Control-Allow-Methods"),
            Some("GET, HEAD, POST, OPTIONS")
        );
        assert_eq!(
            reply.header_value("Access-Control-Allow-Headers"),
            Some(ALLOW_HEADERS)
        );
        assert_eq!(reply.header_value("Access-Control-Max-Age"), Some("600"));
    }
}
