//! The route table: which handler serves which method and path.

use tiny_http_fork::Method;

use crate::auth::{self, Credentials, User};
use crate::error::ApiError;
use crate::handlers::{articles, ops, users};
use crate::request::Req;
use crate::response::Reply;
use crate::App;

/// A known path, with what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/articles`
    Articles,
    /// `/articles/{id}`
    Article(i64),
    /// `/me`
    Me,
    /// `/healthz`
    Healthz,
    /// `/readyz`
    Readyz,
    /// `/metrics`
    Metrics,
    /// `/openapi.json`
    OpenApi,
    /// `/__panic`, debug builds only: lets the test suite prove that a
    /// panicking handler costs one 500 and nothing more.
    #[cfg(debug_assertions)]
    Panic,
}

impl Route {
    /// Every route pattern, for documentation and metrics.
    pub const PATTERNS: &'static [&'static str] = &[
        "/articles",
        "/articles/{id}",
        "/me",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ];

    /// The route of a path. An article id that is not a positive decimal
    /// integer of at most 63 bits is a 404, like any unknown path.
    pub fn resolve(path: &str) -> Result<Route, ApiError> {
        let Some(rest) = path.strip_prefix('/') else {
            return Err(no_route());
        };
        // At most two segments matter; a third means no route.
        let mut segments = rest.split('/');
        match (segments.next(), segments.next(), segments.next()) {
            (Some("articles"), None, _) => Ok(Route::Articles),
            (Some("me"), None, _) => Ok(Route::Me),
            (Some("healthz"), None, _) => Ok(Route::Healthz),
            (Some("readyz"), None, _) => Ok(Route::Readyz),
            (Some("metrics"), None, _) => Ok(Route::Metrics),
            (Some("openapi.json"), None, _) => Ok(Route::OpenApi),
            (Some("articles"), Some(id), None) => parse_id(id)
                .map(Route::Article)
                .ok_or(ApiError::NotFound(articles::NOT_FOUND)),
            #[cfg(debug_assertions)]
            (Some("__panic"), None, _) => Ok(Route::Panic),
            _ => Err(no_route()),
        }
    }

    /// The pattern this route matched, e.g. `/articles/{id}`.
    pub fn pattern(&self) -> &'static str {
        match self {
            Route::Articles => "/articles",
            Route::Article(_) => "/articles/{id}",
            Route::Me => "/me",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            #[cfg(debug_assertions)]
            Route::Panic => "/__panic",
        }
    }

    /// The `Allow` header of this route.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Articles => "GET, HEAD, POST, OPTIONS",
            Route::Article(_) => "GET, HEAD, PUT, PATCH, DELETE, OPTIONS",
            Route::Me | Route::Healthz | Route::Readyz | Route::Metrics | Route::OpenApi => {
                "GET, HEAD, OPTIONS"
            }
            #[cfg(debug_assertions)]
            Route::Panic => "GET",
        }
    }
}

/// Sends a request to its handler. `HEAD` runs the `GET` handler; the HTTP
/// layer leaves out the body. An HTTP/1.1 request without `Host` is a 400;
/// then a bearer token, if present, is checked, on every request: an
/// invalid one is a 401 whatever the path.
pub fn dispatch(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let route = Route::resolve(&req.path);
    if let Ok(route) = &route {
        req.route = Some(route.pattern());
    }
    if req.missing_host() {
        return Err(ApiError::BadRequest(
            "An HTTP/1.1 request needs a Host header".into(),
        ));
    }
    req.user = authenticate(app, req)?;
    let route = route?;
    match (&req.method, route) {
        (Method::Get | Method::Head, Route::Articles) => articles::list(app, req),
        (Method::Post, Route::Articles) => articles::create(app, req),
        (Method::Get | Method::Head, Route::Article(id)) => articles::show(app, req, id),
        (Method::Put, Route::Article(id)) => articles::replace(app, req, id),
        (Method::Patch, Route::Article(id)) => articles::patch(app, req, id),
        (Method::Delete, Route::Article(id)) => articles::delete(app, req, id),
        (Method::Get | Method::Head, Route::Me) => users::me(app, req),
        (Method::Get | Method::Head, Route::Healthz) => ops::healthz(app, req),
        (Method::Get | Method::Head, Route::Readyz) => ops::readyz(app, req),
        (Method::Get | Method::Head, Route::Metrics) => ops::metrics(app, req),
        (Method::Get | Method::Head, Route::OpenApi) => ops::openapi(app, req),
        #[cfg(debug_assertions)]
        (Method::Get, Route::Panic) => panic!("deliberate panic for the test suite"),
        (Method::Options, route) => Ok(Reply::empty(204).header("Allow", route.allow())),
        (_, route) => Err(ApiError::MethodNotAllowed(route.allow())),
    }
}

/// The user behind the request's bearer token: `None` without one, a 401 for
/// a malformed, unknown or revoked one.
fn authenticate(app: &App, req: &Req<'_>) -> Result<Option<User>, ApiError> {
    match auth::credentials(req.header("Authorization")) {
        Credentials::None => Ok(None),
        Credentials::Malformed => Err(auth::token_invalid()),
        Credentials::Bearer(token) => match app.store.user_by_token(&auth::token_hash(token))? {
            Some(user) => Ok(Some(user)),
            None => Err(auth::token_invalid()),
        },
    }
}

fn no_route() -> ApiError {
    ApiError::NotFound("No such route")
}

/// A positive decimal integer that fits in 63 bits: digits only, no sign.
fn parse_id(text: &str) -> Option<i64> {
    crate::util::decimal(text)
        .and_then(|n| i64::try_from(n).ok())
        .filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_known_paths() {
        assert_eq!(Route::resolve("/articles").unwrap(), Route::Articles);
        assert_eq!(Route::resolve("/articles/42").unwrap(), Route::Article(42));
        assert_eq!(
            Route::resolve("/articles/9223372036854775807").unwrap(),
            Route::Article(i64::MAX)
        );
    }

    #[test]
    fn bad_ids_and_unknown_paths_are_404() {
        for path in [
            "/articles/0",
            "/articles/-1",
            "/articles/+1",
            "/articles/1.0",
            "/articles/1e3",
            "/articles/abc",
            "/articles/9223372036854775808",
            "/articles/%31",
            "/articles/1/",
            "/articles/",
            "/articles//1",
            "/articles/1/../2",
            "/",
            "*",
            "",
            "/Articles",
        ] {
            let err = Route::resolve(path).unwrap_err();
            assert_eq!(err.status(), 404, "{path}");
        }
    }

    #[test]
    fn patterns_cover_every_route() {
        for route in [
            Route::Articles,
            Route::Article(1),
            Route::Me,
            Route::Healthz,
            Route::Readyz,
            Route::Metrics,
            Route::OpenApi,
        ] {
            assert!(Route::PATTERNS.contains(&route.pattern()));
            assert!(route.allow().contains("OPTIONS"));
        }
    }
}
