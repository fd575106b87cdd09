//! Every page at 375 px and at 1280 px: nothing wider than the window, and
//! nothing loaded from another host. Also makes the README's screenshots
//! (`ARTICLES_SCREENSHOTS=docs`).

use serde_json::json;

use super::{open_admin, save_screenshot};
use crate::browser::Browser;
use crate::in_process::TestServer;

/// What a page's width and requests are: `[innerWidth, scrollWidth,
/// addresses of everything it loaded from another origin]`.
const MEASURE: &str = "
const foreign = performance.getEntries()
  .filter((e) => e.name.startsWith('http') && !e.name.startsWith(location.origin + '/'))
  .map((e) => e.name);
return [window.innerWidth, document.documentElement.scrollWidth, foreign];";

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn every_page_fits_375_and_1280_pixels_and_loads_only_from_its_server() {
    let server = TestServer::start();
    let long = "A title with a very-long-unbroken-word-that-would-overflow-a-narrow-screen-if-it-were-not-wrapped-at-all";
    let id = server.create(long, &"Some content. ".repeat(40), &["layout", "narrow"])["id"]
        .as_i64()
        .unwrap();
    let token = server.add_user("alice");
    for (title, tags) in [
        ("Choosing a framework", &["python", "web"] as &[&str]),
        ("Token auth in five minutes", &["auth"]),
        (
            "Webhooks that never lose a write",
            &["webhooks", "reliability"],
        ),
        ("Following the change feed", &["events", "web"]),
    ] {
        let body = json!({"title": title, "content": "Text", "tags": tags});
        let auth = format!("Bearer {token}");
        let resp = server.send_json("POST", "/articles", &[("Authorization", &auth)], &body);
        assert_eq!(resp.status, 201);
    }
    let browser = Browser::start();
    for (width, suffix) in [(375, "-375"), (1280, "")] {
        browser.resize(width, 900);
        let views = [
            ("/", "index"),
            ("/admin", "admin"),
            (&format!("/admin#/articles/{id}") as &str, "admin-article"),
            ("/admin#/new", "admin-new"),
            ("/docs", "docs"),
        ];
        for (path, name) in views {
            match path.strip_prefix("/admin") {
                Some(fragment) => open_admin(&browser, &server, fragment),
                None => browser.goto(&format!("http://{}{path}", server.addr)),
            }
            if path == "/docs" {
                browser.wait_for(
                    "the operations",
                    "return document.querySelectorAll('details.operation').length",
                    &[],
                );
                // Open every operation: tables and examples must fit too.
                browser.run(
                    "document.querySelectorAll('details').forEach((d) => { d.open = true; })",
                    &[],
                );
            }
            // A fragment is not a new page: wait for the view it opens.
            let view = match path {
                p if p.contains("#/articles") => Some("article-view"),
                p if p.contains("#/new") => Some("editor"),
                _ => None,
            };
            if let Some(view) = view {
                browser.wait_for(
                    view,
                    "return !document.getElementById(arguments[0]).hidden",
                    &[json!(view)],
                );
            }
            let measured = browser.run(MEASURE, &[]);
            assert_eq!(measured[0], width, "the window is {width} px wide");
            assert!(
                measured[1].as_u64() <= measured[0].as_u64(),
                "{path} at {width} px scrolls sideways: {measured}"
            );
            assert_eq!(measured[2], json!([]), "{path} loaded from another host");
            if path == "/admin" {
                save_screenshot(&browser, &format!("{name}{suffix}.png"));
            }
        }
    }
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn the_policy_blocks_what_a_page_did_not_ship() {
    // A script that tries to load from elsewhere, or inject inline script,
    // is stopped by the Content-Security-Policy, which the page reports.
    let server = TestServer::start();
    let browser = Browser::start();
    open_admin(&browser, &server, "");
    let script = "
const done = arguments[arguments.length - 1];
const blocked = [];
document.addEventListener('securitypolicyviolation', (e) => blocked.push(e.violatedDirective));
const img = document.createElement('img');
img.src = 'http://example.invalid/x.png';
document.body.append(img);
const inline = document.createElement('script');
inline.textContent = 'window.ran = true';
document.body.append(inline);
fetch('http://example.invalid/').catch(() => {});
setTimeout(() => done([blocked, window.ran === true]), 500);";
    let outcome = browser.run_async(script, &[]);
    let blocked: Vec<String> = serde_json::from_value(outcome[0].clone()).unwrap();
    assert!(
        blocked.iter().any(|d| d.starts_with("img-src")),
        "{blocked:?}"
    );
    assert!(
        blocked.iter().any(|d| d.starts_with("script-src")),
        "{blocked:?}"
    );
    assert!(
        blocked.iter().any(|d| d.starts_with("connect-src")),
        "{blocked:?}"
    );
    assert_eq!(outcome[1], false, "inline script ran");
}

#[test]
#[ignore = "needs Chromium: cargo test --test it in_browser -- --ignored"]
fn the_pages_follow_the_systems_colour_scheme() {
    let server = TestServer::start();
    let browser = Browser::start();
    let colours = "const s = getComputedStyle(document.body); return [s.backgroundColor, s.color]";
    for path in ["/", "/docs", "/admin"] {
        browser.goto(&format!("http://{}{path}", server.addr));
        browser.prefer_color_scheme("light");
        let light = browser.run(colours, &[]);
        assert_eq!(
            light,
            json!(["rgb(255, 255, 255)", "rgb(27, 31, 36)"]),
            "{path}"
        );
        browser.prefer_color_scheme("dark");
        let dark = browser.run(colours, &[]);
        assert_eq!(
            dark,
            json!(["rgb(13, 17, 23)", "rgb(230, 237, 243)"]),
            "{path}"
        );
    }
}
