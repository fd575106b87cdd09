//! The pages and the change feed in a real browser: headless Chromium,
//! driven over WebDriver (`crate::browser`). Every test here is ignored by
//! a plain `cargo test`, which cannot know that Chromium is installed;
//! `.ci/run` installs it and runs them with
//! `cargo test --test it in_browser -- --ignored`.
//!
//! Controls are found by their accessible names, the ones the contract
//! lists, as Chromium computes them.

mod admin;
mod docs;
mod event_source;
mod layout;

use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::in_process::TestServer;

/// Opens `/admin` (at `fragment`, if not empty) and waits for its list.
fn open_admin(browser: &Browser, server: &TestServer, fragment: &str) {
    browser.goto(&format!("http://{}/admin{fragment}", server.addr));
    browser.wait_for(
        "the list of articles",
        "return document.getElementById('total').textContent",
        &[],
    );
}

/// The text of the page's `role="alert"` or `role="status"` element.
fn message(browser: &Browser, role: &str) -> String {
    let script = "return document.querySelector(`[role=\"${arguments[0]}\"]`).textContent";
    browser
        .run(script, &[json!(role)])
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for the `role` message to contain `text`.
fn await_message(browser: &Browser, role: &str, text: &str) {
    let script = "const box = document.querySelector(`[role=\"${arguments[0]}\"]`);
                  return box.textContent.includes(arguments[1]) && box.textContent";
    browser.wait_for(
        &format!(
            "{role} saying {text:?} (before the wait: {:?})",
            message(browser, role)
        ),
        script,
        &[json!(role), json!(text)],
    );
}

/// The titles the list shows, in order.
fn listed_titles(browser: &Browser) -> Vec<String> {
    let script =
        "return Array.from(document.querySelectorAll('#items li > a'), (a) => a.textContent)";
    serde_json::from_value(browser.run(script, &[])).unwrap()
}

/// Waits up to `within` for the list to show an article titled `title`.
fn await_listed(browser: &Browser, title: &str, within: Duration) {
    let script = "return Array.from(document.querySelectorAll('#items li > a'))
                    .some((a) => a.textContent === arguments[0])";
    browser.wait_within(
        within,
        &format!("{title:?} in the list"),
        script,
        &[json!(title)],
    );
}

/// The value of a form control.
fn value_of(browser: &Browser, name: &str) -> String {
    let element = browser.control(name);
    let value = browser.run("return arguments[0].value", &[element.to_json()]);
    value.as_str().unwrap().to_owned()
}

/// The articles as the API has them.
fn articles(server: &TestServer) -> Vec<Value> {
    let resp = server.get("/articles?per_page=100");
    assert_eq!(resp.status, 200);
    serde_json::from_value(resp.json()).unwrap()
}

/// Where a test saves screenshots, if `ARTICLES_SCREENSHOTS` names a
/// directory (`docs/` for the README's).
fn save_screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("ARTICLES_SCREENSHOTS") {
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, browser.screenshot()).unwrap();
        eprintln!("saved {}", path.display());
    }
}
