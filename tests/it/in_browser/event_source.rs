//! The change feed in a real browser: Chromium's own `EventSource` follows
//! `/events`, and when the server goes away and comes back it reconnects by
//! itself, sends `Last-Event-ID`, and misses nothing.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::in_process::TestServer;

/// Follows `/events?after=0` and ends with what it saw once it has seen
/// `arguments[0]` events: type, `lastEventId`, the event's `seq` and
/// title, and how many times the connection failed.
const FOLLOW: &str = r#"
const want = arguments[0];
const done = arguments[arguments.length - 1];
const seen = [];
let errors = 0;
const source = new EventSource('/events?after=0');
source.onerror = () => { errors += 1; };
// Whatever was seen, before WebDriver's own timeout hides it.
setTimeout(() => done({seen, errors, state: source.readyState}), 20000);
for (const type of ['article.created', 'article.updated', 'article.deleted']) {
  source.addEventListener(type, (message) => {
    const event = JSON.parse(message.data);
    seen.push({type: message.type, id: message.lastEventId, seq: event.seq,
               title: event.data.title});
    if (seen.length === want) {
      source.close();
      done({seen, errors});
    }
  });
}
"#;

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn a_browsers_event_source_follows_and_resumes_across_a_restart() {
    let browser = Browser::start();
    let server = TestServer::start();
    server.create("one", "c", &[]);
    server.create("two", "c", &[]);
    // Any page of the server's origin: EventSource is same-origin here.
    browser.goto(&format!("http://{}/openapi.json", server.addr));
    let following = std::thread::spawn(move || browser.run_async(FOLLOW, &[json!(5)]));
    server.await_metric("events_streams_open", 1.0);
    server.create("three", "c", &[]);
    server.await_metric("events_sent_total", 3.0);

    // The server stops (its streams end) and another starts on the same
    // address and database; changes are made before the browser is back.
    let crate::support::server::TestServer {
        kind,
        dir,
        db,
        addr,
    } = server;
    drop(kind);
    let server = TestServer::launch(dir, &db, &["--addr", &addr.to_string()], &[]);
    let four = server.create("four", "c", &[]);
    let resp = server.request("DELETE", "/articles/1", &[], None);
    assert_eq!(resp.status, 204);

    let result = following.join().unwrap();
    let seen: Vec<(String, String, i64, String)> = result["seen"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e: &Value| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
                e["seq"].as_i64().unwrap(),
                e["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String, i64, String)> = [
        ("article.created", 1, "one"),
        ("article.created", 2, "two"),
        ("article.created", 3, "three"),
        ("article.created", 4, "four"),
        ("article.deleted", 5, "one"),
    ]
    .into_iter()
    .map(|(t, seq, title)| (t.to_owned(), seq.to_string(), seq, title.to_owned()))
    .collect();
    assert_eq!(
        seen, expected,
        "every change once, in order, across the restart: {result}"
    );
    assert!(result["errors"].as_i64().unwrap() >= 1, "the drop was seen");
    assert_eq!(four["id"], 4);
}
