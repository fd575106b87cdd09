//! `/docs` in Chromium: every operation of the OpenAPI document is there,
//! and its console sends a real request and shows what came back.

use serde_json::{json, Value};

use super::value_of;
use crate::browser::Browser;
use crate::in_process::TestServer;

/// Every (method, path) of the document, as the page lists them.
fn operations(doc: &Value) -> Vec<String> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "head", "post", "put", "patch", "delete", "options"] {
            if item.get(method).is_some() {
                all.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    all.sort();
    all
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn docs_show_every_operation_and_send_real_requests() {
    let server = TestServer::start();
    let token = server.add_user("alice");
    let doc = server.get("/openapi.json").json();
    let browser = Browser::start();
    browser.goto(&format!("http://{}/docs", server.addr));
    let listed = browser.wait_for(
        "the operations",
        "const all = document.querySelectorAll('#operations > details > summary');
         return all.length && Array.from(all, (s) =>
           s.querySelector('.method').textContent + ' ' + s.querySelector('code').textContent)",
        &[],
    );
    let mut listed: Vec<String> = serde_json::from_value(listed).unwrap();
    listed.sort();
    assert_eq!(listed, operations(&doc));

    // Each operation, opened, has its parameters, responses and a Try button.
    let summary = browser.element(
        "return Array.from(document.querySelectorAll('#operations > details > summary'))
           .find((s) => s.textContent.startsWith('POST /articles'))",
        &[],
    );
    browser.click(&summary);
    let tries = browser.controls("Try");
    assert_eq!(tries.len(), 1, "only the open operation's Try is visible");
    let shown = browser.run(
        "const op = document.querySelector('details[open]');
         return [op.querySelectorAll('h3').length, op.textContent.includes('422'),
                 op.textContent.includes('Idempotency-Key'),
                 Array.from(op.querySelectorAll('pre'), (p) => p.getAttribute('aria-label'))]",
        &[],
    );
    assert_eq!(shown[1], true, "{shown}");
    assert_eq!(shown[2], true, "{shown}");
    let labels: Vec<String> = serde_json::from_value(shown[3].clone()).unwrap();
    assert!(
        labels.contains(&"Example request body".to_owned()),
        "{labels:?}"
    );
    assert!(
        labels.contains(&"Example 201 response".to_owned()),
        "{labels:?}"
    );

    // Try fills the console; Send sends it, with the token.
    browser.click(&tries[0]);
    assert_eq!(value_of(&browser, "Method"), "POST");
    assert_eq!(value_of(&browser, "Path"), "/articles");
    let body: Value = serde_json::from_str(&value_of(&browser, "Body")).unwrap();
    assert!(body["title"].is_string(), "{body}");
    browser.fill(&browser.control("Token"), &token);
    browser.click(&browser.control("Send"));
    let result = |status: &str| {
        browser.wait_for(
            &format!("a {status} answer"),
            "return document.getElementById('result-status').textContent.startsWith(arguments[0])
               && [document.getElementById('result-headers').textContent,
                   document.getElementById('result-body').textContent]",
            &[json!(status)],
        )
    };
    let created = result("201");
    assert!(
        created[0]
            .as_str()
            .unwrap()
            .contains("location: /articles/1"),
        "{created}"
    );
    let article: Value = serde_json::from_str(created[1].as_str().unwrap()).unwrap();
    assert_eq!(article["author"]["username"], "alice");
    assert_eq!(server.get("/articles/1").json()["title"], body["title"]);

    // A wrong token: the 401 and its problem are shown.
    browser.fill(&browser.control("Token"), "wrong");
    browser.fill(&browser.control("Path"), "/me");
    let method = browser.control("Method");
    let get = browser.element(
        "return Array.from(arguments[0].options).find((o) => o.text === 'GET')",
        &[method.to_json()],
    );
    browser.click(&method);
    browser.click(&get);
    browser.fill(&browser.control("Body"), "");
    browser.click(&browser.control("Send"));
    let refused = result("401");
    assert!(
        refused[0]
            .as_str()
            .unwrap()
            .contains("www-authenticate: Bearer"),
        "{refused}"
    );
    assert!(
        refused[1].as_str().unwrap().contains("\"status\": 401"),
        "{refused}"
    );
}
