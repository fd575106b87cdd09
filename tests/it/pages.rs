//! The pages for people over plain HTTP: what `/` answers whom, and the
//! headers every page and asset carries. (What the pages do is tested in a
//! real browser, in `in_browser`.)

use crate::in_process::TestServer;

/// Every page and asset, and its content type.
const FILES: &[(&str, &str)] = &[
    ("/docs", "text/html; charset=utf-8"),
    ("/admin", "text/html; charset=utf-8"),
    ("/assets/style.css", "text/css; charset=utf-8"),
    ("/assets/api.js", "text/javascript; charset=utf-8"),
    ("/assets/docs.js", "text/javascript; charset=utf-8"),
    ("/assets/admin.js", "text/javascript; charset=utf-8"),
    ("/assets/icon.svg", "image/svg+xml"),
];

const BROWSER_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

#[test]
fn the_index_is_html_for_a_browser_and_json_links_for_a_client() {
    let server = TestServer::start();
    let page = server.request("GET", "/", &[("Accept", BROWSER_ACCEPT)], None);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("Vary"), Some("Accept"));
    let html = page.text();
    for link in ["/admin", "/docs", "/openapi.json", "/articles", "/metrics"] {
        assert!(html.contains(&format!("href=\"{link}\"")), "{link}");
    }

    for accept in [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("application/json, text/html"),
    ] {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept", *a)).collect();
        let index = server.request("GET", "/", &headers, None);
        assert_eq!(index.status, 200, "{accept:?}");
        assert_eq!(index.header("Vary"), Some("Accept"));
        let links = &index.json()["links"];
        for (name, path) in [
            ("admin", "/admin"),
            ("docs", "/docs"),
            ("openapi", "/openapi.json"),
            ("articles", "/articles"),
            ("metrics", "/metrics"),
            ("events", "/events"),
        ] {
            assert_eq!(links[name], path, "{accept:?}");
            // Each link works.
            assert_eq!(server.get(path).status, 200, "{path}");
        }
    }
}

#[test]
fn pages_and_assets_are_locked_down_and_revalidate() {
    let server = TestServer::start();
    let mut files = FILES.to_vec();
    files.push(("/", "text/html; charset=utf-8"));
    for (path, content_type) in files {
        let accept = [("Accept", BROWSER_ACCEPT)];
        let resp = server.request("GET", path, &accept, None);
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(resp.header("Content-Type"), Some(content_type), "{path}");
        let csp = resp.header("Content-Security-Policy").unwrap();
        assert!(csp.starts_with("default-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
        assert_eq!(resp.header("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(resp.header("Cache-Control"), Some("no-cache"));
        let tag = resp.header("ETag").unwrap().to_owned();
        assert!(tag.starts_with('"') && tag.len() > 2, "a strong tag: {tag}");
        assert!(!resp.body.is_empty());

        // Revalidation: the same tag (weak or strong, in a list) is a 304
        // with the tag and no body; another tag gets the file again.
        for sent in [tag.clone(), format!("\"x\", W/{tag}"), "*".to_owned()] {
            let headers = [accept[0], ("If-None-Match", sent.as_str())];
            let again = server.request("GET", path, &headers, None);
            assert_eq!(again.status, 304, "{path} {sent}");
            assert_eq!(again.header("ETag"), Some(tag.as_str()));
            assert!(again.body.is_empty());
            assert_eq!(again.header("Content-Length"), None);
        }
        let headers = [accept[0], ("If-None-Match", "\"stale\"")];
        let stale = server.request("GET", path, &headers, None);
        assert_eq!(stale.status, 200);
        assert_eq!(stale.body, resp.body);

        let head = server.request("HEAD", path, &accept, None);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("ETag"), Some(tag.as_str()));
        assert_eq!(
            head.header("Content-Length"),
            Some(resp.body.len().to_string().as_str())
        );
    }
}

#[test]
fn only_the_pages_files_are_served() {
    let server = TestServer::start();
    for path in [
        "/assets/",
        "/assets/missing.js",
        "/assets/../src/main.rs",
        "/admin/",
        "/docs/x",
    ] {
        let resp = server.get(path);
        resp.problem(404);
    }
    let post = server.request("POST", "/admin", &[("Content-Length", "0")], None);
    let problem = post.problem(405);
    assert_eq!(
        post.header("Allow"),
        Some("GET, HEAD, OPTIONS"),
        "{problem}"
    );
}
