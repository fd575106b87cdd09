//! Running as a sidecar: probes, the OpenAPI document and CORS. (Metrics,
//! whose counters are kept for a whole process, and graceful shutdown on a
//! signal are in the `process` binary.)

use serde_json::{json, Value};

use crate::in_process::TestServer;
use crate::support::bearer;
use crate::support::database::TempDir;

#[test]
fn health_and_readiness() {
    let server = TestServer::start();
    let health = server.get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = server.get("/readyz");
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));
    let head = server.request("HEAD", "/healthz", &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

/// Whether `real` has exactly the keys of `example`, each of the same JSON
/// type, recursively (arrays compare their first elements).
fn same_shape(example: &Value, real: &Value) -> bool {
    match (example, real) {
        (Value::Object(e), Value::Object(r)) => {
            e.len() == r.len()
                && e.iter()
                    .all(|(k, v)| r.get(k).is_some_and(|rv| same_shape(v, rv)))
        }
        (Value::Array(e), Value::Array(r)) => match (e.first(), r.first()) {
            (Some(e), Some(r)) => same_shape(e, r),
            _ => true,
        },
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => true,
        _ => false,
    }
}

#[test]
fn openapi_examples_match_real_responses() {
    let server = TestServer::start();
    let doc = server.get("/openapi.json").json();
    let example = |schema: &str| doc["components"]["schemas"][schema]["examples"][0].clone();

    let auth = bearer(&server.add_user("alice"));
    let created = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &auth)],
        &example("ArticleInput"),
    );
    assert_eq!(created.status, 201);
    let real = [
        ("Article", created.json()),
        (
            "User",
            server
                .request("GET", "/me", &[("Authorization", &auth)], None)
                .json(),
        ),
        ("Problem", server.get("/articles/999").json()),
        ("ValidationProblem", server.get("/articles?page=0").json()),
        ("Health", server.get("/healthz").json()),
        ("Ready", server.get("/readyz").json()),
    ];
    for (schema, real) in real {
        assert!(
            same_shape(&example(schema), &real),
            "{schema}: example {} vs real {real}",
            example(schema)
        );
    }
    let patched = server.send_json(
        "PATCH",
        &format!("/articles/{}", created.json()["id"]),
        &[("Authorization", &auth)],
        &example("ArticlePatch"),
    );
    assert_eq!(patched.status, 200);
}

#[test]
fn no_cors_headers_without_the_flag() {
    let server = TestServer::start();
    let resp = server.request(
        "GET",
        "/articles",
        &[("Origin", "https://app.example")],
        None,
    );
    assert!(resp
        .headers
        .iter()
        .all(|(name, _)| !name.to_ascii_lowercase().starts_with("access-control")));
    assert_eq!(resp.header("Vary"), None);
}

#[test]
fn cors_for_configured_origins() {
    let server = TestServer::start_with(&[
        "--cors-origin",
        "https://app.example",
        "--cors-origin",
        "http://localhost:3000",
    ]);
    let resp = server.request(
        "GET",
        "/articles",
        &[("Origin", "https://app.example")],
        None,
    );
    assert_eq!(
        resp.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert_eq!(resp.header("Vary"), Some("Origin"));
    let exposed = resp.header("Access-Control-Expose-Headers").unwrap();
    for name in [
        "X-Total-Count",
        "Link",
        "Location",
        "X-Request-Id",
        "ETag",
        "Idempotency-Replayed",
        "Retry-After",
        "WWW-Authenticate",
        "Events-Seq",
    ] {
        assert!(exposed.contains(name), "{name}");
    }

    let other = server.request(
        "GET",
        "/articles",
        &[("Origin", "https://evil.example")],
        None,
    );
    assert_eq!(other.header("Access-Control-Allow-Origin"), None);

    let preflight = server.request(
        "OPTIONS",
        "/articles/1",
        &[
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "PATCH"),
        ],
        None,
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("Access-Control-Allow-Origin"),
        Some("http://localhost:3000")
    );
    assert!(preflight
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("PATCH"));
    let allowed = preflight.header("Access-Control-Allow-Headers").unwrap();
    for name in [
        "Authorization",
        "Content-Type",
        "X-Request-Id",
        "If-Match",
        "If-None-Match",
        "Idempotency-Key",
        "Last-Event-ID",
    ] {
        assert!(allowed.contains(name), "{name}");
    }
    assert!(preflight.header("Access-Control-Max-Age").is_some());

    let error = server.request(
        "GET",
        "/articles/999",
        &[("Origin", "https://app.example")],
        None,
    );
    assert_eq!(
        error.header("Access-Control-Allow-Origin"),
        Some("https://app.example"),
        "errors too"
    );
}

#[test]
fn cors_any_origin_from_the_environment() {
    let dir = TempDir::new();
    let db = dir.database();
    let server = TestServer::launch(
        dir,
        &db,
        &[],
        &[("ARTICLES_CORS_ORIGIN", "https://a.example,*")],
    );
    let resp = server.request(
        "GET",
        "/healthz",
        &[("Origin", "https://anything.example")],
        None,
    );
    assert_eq!(resp.header("Access-Control-Allow-Origin"), Some("*"));
}
