//! CORS, only when `--cors-origin` is given. A pure decoration of a reply:
//! the server applies it once, to every response.

use crate::config::CorsPolicy;
use crate::http::response::Reply;

/// Response headers a browser script may read.
pub const EXPOSE_HEADERS: &str = "X-Total-Count, Link, Location, X-Request-Id, ETag, \
     Idempotency-Replayed, Retry-After, WWW-Authenticate, Events-Seq";
/// Request headers a browser script may send.
pub const ALLOW_HEADERS: &str =
    "Authorization, Content-Type, X-Request-Id, If-Match, If-None-Match, Idempotency-Key, Last-Event-ID";
/// How long a browser may cache a preflight answer, in seconds.
pub const MAX_AGE_SECONDS: u32 = 600;

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
    use crate::config::valid_origin;

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
