//! The route table: which handler serves which method and path. Matching,
//! the `Allow` header, the metrics' route labels and the OpenAPI check all
//! read `ROUTES`, so a new endpoint is one line here and its handler.

use tiny_http_fork::Method;

use super::auth::{self, Credentials};
use super::error::ApiError;
use super::handlers::{articles, events, ops, pages, users};
use super::request::Req;
use super::response::Reply;
use super::App;
use crate::model::User;

/// What serves a route. A path parameter (`{id}`) is in `Req::id`.
type Handler = fn(&App, &mut Req<'_>) -> Result<Reply, ApiError>;

/// One line of the table: a method on a path pattern, and its handler. The
/// pattern is also the route's label in `/metrics`.
pub(super) struct Route {
    method: Method,
    pub(super) pattern: &'static str,
    handler: Handler,
}

const fn route(method: Method, pattern: &'static str, handler: Handler) -> Route {
    Route {
        method,
        pattern,
        handler,
    }
}

/// Every route. `HEAD` is served wherever `GET` is, `OPTIONS` on every
/// pattern. `{id}` matches a positive decimal integer of at most 63 bits.
const ROUTES: &[Route] = &[
    route(Method::Get, "/articles", articles::list),
    route(Method::Post, "/articles", articles::create),
    route(Method::Get, "/articles/{id}", articles::show),
    route(Method::Put, "/articles/{id}", articles::replace),
    route(Method::Patch, "/articles/{id}", articles::patch),
    route(Method::Delete, "/articles/{id}", articles::delete),
    route(Method::Get, "/me", users::me),
    route(Method::Get, "/healthz", ops::healthz),
    route(Method::Get, "/readyz", ops::readyz),
    route(Method::Get, "/metrics", ops::metrics),
    route(Method::Get, "/openapi.json", ops::openapi),
    route(Method::Get, "/events", events::list),
    route(Method::Get, "/", pages::index),
    route(Method::Get, "/docs", pages::serve),
    route(Method::Get, "/admin", pages::serve),
    // The pages' files: not API, so not in the OpenAPI document.
    route(Method::Get, "/assets/style.css", pages::serve),
    route(Method::Get, "/assets/api.js", pages::serve),
    route(Method::Get, "/assets/docs.js", pages::serve),
    route(Method::Get, "/assets/admin.js", pages::serve),
    route(Method::Get, "/assets/icon.svg", pages::serve),
];

/// The `detail` of a 404 for a path no route has.
const NO_ROUTE: &str = "No such route";

/// The route labels for `/metrics`: every pattern, once.
pub(crate) fn labels() -> Vec<&'static str> {
    let mut labels: Vec<&'static str> = Vec::new();
    for route in ROUTES {
        if !labels.contains(&route.pattern) {
            labels.push(route.pattern);
        }
    }
    labels
}

/// How a path matches a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    /// It does; with the `{id}` it carries, if the pattern has one.
    Yes(Option<i64>),
    /// Its fixed parts do, but its `{id}` is not a valid id: a 404 for
    /// the resource, not for the route.
    BadId,
    No,
}

fn matches(pattern: &str, path: &str) -> Match {
    // `{id}` is the one parameter; a char search finds it (a str search
    // costs more than the rest of the match).
    let Some((before, after)) = pattern
        .split_once('{')
        .and_then(|(before, rest)| Some((before, rest.strip_prefix("id}")?)))
    else {
        return match pattern == path {
            true => Match::Yes(None),
            false => Match::No,
        };
    };
    match path
        .strip_prefix(before)
        .and_then(|rest| rest.strip_suffix(after))
    {
        Some(text) if !text.contains('/') => match parse_id(text) {
            Some(id) => Match::Yes(Some(id)),
            None => Match::BadId,
        },
        _ => Match::No,
    }
}

/// A positive decimal integer that fits in 63 bits: digits only, no sign.
fn parse_id(text: &str) -> Option<i64> {
    crate::util::decimal(text)
        .and_then(|n| i64::try_from(n).ok())
        .filter(|id| *id > 0)
}

/// The routes whose pattern `path` matches, and its `{id}`; or the 404.
pub(super) fn resolve(path: &str) -> Result<(Vec<&'static Route>, Option<i64>), ApiError> {
    let mut found = Vec::new();
    let mut id = None;
    let mut bad_id = false;
    // The table lists a pattern's routes together: each pattern is
    // matched once.
    let mut last: Option<(&str, Match)> = None;
    for route in ROUTES {
        let outcome = match last.take() {
            Some((pattern, outcome)) if pattern == route.pattern => outcome,
            _ => matches(route.pattern, path),
        };
        last = Some((route.pattern, outcome.clone()));
        match outcome {
            Match::Yes(captured) => {
                id = captured;
                found.push(route);
            }
            Match::BadId => bad_id = true,
            Match::No => {}
        }
    }
    match (found.is_empty(), bad_id) {
        (false, _) => Ok((found, id)),
        (true, true) => Err(ApiError::NotFound(articles::NOT_FOUND)),
        (true, false) => Err(ApiError::NotFound(NO_ROUTE)),
    }
}

/// The `Allow` header of a pattern's routes, in table order: `HEAD` after
/// `GET`, `OPTIONS` last.
fn allow(routes: &[&Route]) -> String {
    let mut methods: Vec<&str> = Vec::new();
    for route in routes {
        methods.push(route.method.as_str());
        if route.method == Method::Get {
            methods.push("HEAD");
        }
    }
    methods.push("OPTIONS");
    methods.join(", ")
}

/// Sends a request to its handler. `HEAD` runs the `GET` handler; the HTTP
/// layer leaves out the body. An HTTP/1.1 request without `Host` is a 400;
/// then a bearer token, if present, is checked, on every request: an
/// invalid one is a 401 whatever the path.
pub(crate) fn dispatch(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let resolved = resolve(&req.path);
    if let Ok((routes, id)) = &resolved {
        req.route = Some(routes[0].pattern);
        req.id = id.unwrap_or(0);
    }
    if req.missing_host() {
        return Err(ApiError::BadRequest(
            "An HTTP/1.1 request needs a Host header".into(),
        ));
    }
    req.user = authenticate(app, req)?;
    #[cfg(debug_assertions)]
    if req.path == "/__panic" {
        // Debug builds only: lets the test suite prove that a panicking
        // handler costs one 500 and nothing more.
        panic!("deliberate panic for the test suite");
    }
    let (routes, _) = resolved?;
    let wanted = match req.method {
        Method::Head => Method::Get,
        Method::Options => return Ok(Reply::empty(204).header("Allow", allow(&routes))),
        ref method => method.clone(),
    };
    match routes.iter().find(|route| route.method == wanted) {
        Some(route) => (route.handler)(app, req),
        None => Err(ApiError::MethodNotAllowed(allow(&routes))),
    }
}

/// The user behind the request's bearer token: `None` without one, a 401 for
/// a malformed, unknown or revoked one.
fn authenticate(app: &App, req: &Req<'_>) -> Result<Option<User>, ApiError> {
    match auth::credentials(req.header("Authorization")) {
        Credentials::None => Ok(None),
        Credentials::Malformed => Err(auth::token_invalid()),
        Credentials::Bearer(token) => {
            match app
                .store
                .user_by_token(&crate::model::user::token_hash(token))?
            {
                Some(user) => Ok(Some(user)),
                None => Err(auth::token_invalid()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routes under this prefix are the pages' files, left out of the
    /// OpenAPI document.
    const ASSETS: &str = "/assets/";

    fn patterns(path: &str) -> Result<Vec<&'static str>, u16> {
        resolve(path)
            .map(|(routes, _)| routes.iter().map(|r| r.pattern).collect())
            .map_err(|err| err.status())
    }

    #[test]
    fn resolves_known_paths() {
        assert_eq!(patterns("/articles").unwrap()[0], "/articles");
        let (_, id) = resolve("/articles/42").unwrap();
        assert_eq!(id, Some(42));
        let (_, id) = resolve("/articles/9223372036854775807").unwrap();
        assert_eq!(id, Some(i64::MAX));
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
            "/assets/",
            "/assets/nothing.js",
            "*",
            "",
            "/Articles",
        ] {
            assert_eq!(patterns(path).unwrap_err(), 404, "{path}");
        }
    }

    #[test]
    fn a_bad_id_is_the_articles_404() {
        let detail = |path: &str| match resolve(path) {
            Err(ApiError::NotFound(detail)) => detail,
            Err(other) => panic!("{path}: {other:?}"),
            Ok(_) => panic!("{path} resolved"),
        };
        assert_eq!(detail("/articles/abc"), articles::NOT_FOUND);
        assert_eq!(detail("/articles/0"), articles::NOT_FOUND);
        assert_eq!(detail("/articles/1/x"), NO_ROUTE);
        assert_eq!(detail("/nowhere"), NO_ROUTE);
    }

    #[test]
    fn allow_lists_the_patterns_methods() {
        let (routes, _) = resolve("/articles").unwrap();
        assert_eq!(allow(&routes), "GET, HEAD, POST, OPTIONS");
        let (routes, _) = resolve("/articles/1").unwrap();
        assert_eq!(allow(&routes), "GET, HEAD, PUT, PATCH, DELETE, OPTIONS");
        let (routes, _) = resolve("/healthz").unwrap();
        assert_eq!(allow(&routes), "GET, HEAD, OPTIONS");
    }

    #[test]
    fn labels_are_the_patterns_once_each() {
        let labels = labels();
        assert_eq!(labels.len(), 16);
        assert_eq!(&labels[..2], ["/articles", "/articles/{id}"]);
    }

    /// What a `$ref` in the OpenAPI document points at (`#/components/...`).
    fn follow_ref<'a>(
        doc: &'a serde_json::Value,
        node: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        match node["$ref"].as_str() {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("a local $ref");
                follow_ref(doc, doc.pointer(pointer).expect("the $ref resolves"))
            }
            None => node,
        }
    }

    fn has_example(node: &serde_json::Value) -> bool {
        node.get("example").is_some() || node["examples"].as_object().is_some_and(|e| !e.is_empty())
    }

    /// `/docs` shows examples: every parameter, request body and response
    /// of every operation has one (a response without a body, in a header).
    #[test]
    fn openapi_gives_every_operation_examples() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        for (pattern, item) in doc["paths"].as_object().unwrap() {
            let shared = item["parameters"].as_array().cloned().unwrap_or_default();
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let here = format!("{method} {pattern}");
                let own = op["parameters"].as_array().cloned().unwrap_or_default();
                for parameter in shared.iter().chain(&own) {
                    let parameter = follow_ref(&doc, parameter);
                    assert!(has_example(parameter), "{here}: {}", parameter["name"]);
                }
                if let Some(body) = op.get("requestBody") {
                    for media in follow_ref(&doc, body)["content"]
                        .as_object()
                        .unwrap()
                        .values()
                    {
                        assert!(has_example(media), "{here}: request body");
                    }
                }
                for (status, response) in op["responses"].as_object().unwrap() {
                    let response = follow_ref(&doc, response);
                    match response["content"].as_object() {
                        Some(content) => {
                            for (media_type, media) in content {
                                assert!(has_example(media), "{here} {status} {media_type}");
                            }
                        }
                        None => assert!(
                            response["headers"]
                                .as_object()
                                .unwrap()
                                .values()
                                .any(|header| has_example(follow_ref(&doc, header))),
                            "{here} {status}: no header example"
                        ),
                    }
                }
            }
        }
    }

    /// The OpenAPI document describes exactly the table: every route (and
    /// `HEAD` where `GET` is) has an operation with responses, and the
    /// document has no path the table lacks.
    #[test]
    fn openapi_documents_every_route_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(ops::OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for route in ROUTES.iter().filter(|r| !r.pattern.starts_with(ASSETS)) {
            let mut methods = vec![route.method.as_str()];
            if route.method == Method::Get {
                methods.push("HEAD");
            }
            for method in methods {
                let op = &paths[route.pattern][method.to_ascii_lowercase()];
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {} is not documented",
                    route.pattern
                );
            }
        }
        let labels = labels();
        for documented in paths.keys() {
            assert!(
                labels.contains(&documented.as_str()),
                "{documented} is documented but not routed"
            );
        }
        for (pattern, operations) in paths {
            let keys = operations.as_object().unwrap().keys();
            for method in keys.filter(|key| *key != "parameters") {
                let method = method.to_ascii_uppercase();
                let routed = method == "OPTIONS"
                    || ROUTES.iter().any(|r| {
                        r.pattern == pattern
                            && (r.method.as_str() == method
                                || (method == "HEAD" && r.method == Method::Get))
                    });
                assert!(routed, "{method} {pattern} is documented but not routed");
            }
        }
    }
}
