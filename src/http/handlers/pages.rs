//! The pages for people: `/`, `/docs`, `/admin` and their assets, built into
//! the binary from `src/pages/`. The HTML is fixed text: every article a
//! page shows is fetched by its script and inserted as text, so no HTML is
//! ever built from user data on either side.

use serde_json::json;

use crate::http::conditional::TagList;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response::Reply;
use crate::http::App;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Scripts, styles, frames, forms and connections from this origin only:
/// no inline script or style, nothing from another host.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A file served as it was built in, with a strong `ETag` from its bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    tag: u64,
}

const fn asset(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
    Asset {
        path,
        content_type,
        body,
        tag: fnv1a(body),
    }
}

/// A file of `src/pages/` as it is stored: without the indentation of its
/// lines (a tenth of the bytes, and meaningless in our HTML, CSS and
/// JavaScript, which have no multi-line strings or `<pre>` text).
macro_rules! page_file {
    ($name:literal) => {{
        const RAW: &[u8] = include_bytes!(concat!("../../pages/", $name));
        const STORED: [u8; dedented_len(RAW)] = dedent(RAW);
        &STORED
    }};
}

/// Every page and asset, by path. `/` is here as its HTML form.
const ASSETS: &[Asset] = &[
    asset("/", HTML, page_file!("index.html")),
    asset("/docs", HTML, page_file!("docs.html")),
    asset("/admin", HTML, page_file!("admin.html")),
    asset("/assets/style.css", CSS, page_file!("style.css")),
    asset("/assets/api.js", JAVASCRIPT, page_file!("api.js")),
    asset("/assets/docs.js", JAVASCRIPT, page_file!("docs.js")),
    asset("/assets/admin.js", JAVASCRIPT, page_file!("admin.js")),
    asset("/assets/icon.svg", SVG, page_file!("icon.svg")),
];

/// The length of `text` without the spaces and tabs that begin its lines.
const fn dedented_len(text: &[u8]) -> usize {
    dedent_into(text, &mut [])
}

/// `text` without the spaces and tabs that begin its lines; `N` is
/// `dedented_len(text)`.
const fn dedent<const N: usize>(text: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    dedent_into(text, &mut out);
    out
}

/// Writes the bytes `dedent` keeps into `out`, as many as fit, and returns
/// how many it keeps.
const fn dedent_into(text: &[u8], out: &mut [u8]) -> usize {
    let (mut i, mut kept, mut line_start) = (0, 0, true);
    while i < text.len() {
        let indent = line_start && (text[i] == b' ' || text[i] == b'\t');
        if !indent {
            if kept < out.len() {
                out[kept] = text[i];
            }
            kept += 1;
            line_start = text[i] == b'\n';
        }
        i += 1;
    }
    kept
}

/// The index for API clients: the same links the HTML index has.
fn links() -> serde_json::Value {
    json!({
        "name": "articles",
        "version": env!("CARGO_PKG_VERSION"),
        "links": {
            "admin": "/admin",
            "docs": "/docs",
            "openapi": "/openapi.json",
            "articles": "/articles",
            "events": "/events",
            "metrics": "/metrics",
        }
    })
}

/// `GET /`: the HTML index for a browser (an `Accept` that names
/// `text/html` before any JSON type), the links as JSON for anything else.
pub fn index(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let reply = match wants_html(req.list_header("Accept").as_deref().unwrap_or("")) {
        true => serve(app, req)?,
        false => Reply::json(200, &links()),
    };
    Ok(reply.header("Vary", "Accept"))
}

/// `GET` of a page or an asset: 200 with its bytes, or 304 when
/// `If-None-Match` names its tag. Either way it must be revalidated before
/// reuse (`no-cache`), so a new binary's pages show at once.
pub fn serve(_app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let asset = ASSETS
        .iter()
        .find(|asset| asset.path == req.path)
        .ok_or(ApiError::NotFound("No such page"))?;
    let tag = format!("\"{:016x}\"", asset.tag);
    let fresh = req
        .list_header("If-None-Match")
        .is_some_and(|value| TagList::parse(&value).matches_weak(&tag));
    let reply = match fresh {
        true => Reply::empty(304),
        false => Reply::with_body(200, asset.content_type, asset.body.to_vec()),
    };
    Ok(reply
        .header("ETag", tag)
        .header("Cache-Control", "no-cache")
        .header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer"))
}

/// Whether an `Accept` value names `text/html` before any JSON type
/// (`application/json`, `application/problem+json`, `*/*+json`...). A media
/// range refused with `q=0` names nothing.
fn wants_html(accept: &str) -> bool {
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|param| {
            param
                .split_once('=')
                .is_some_and(|(name, value)| name.trim() == "q" && value.trim().parse() == Ok(0.0))
        });
        if refused {
            continue;
        }
        if media == "text/html" {
            return true;
        }
        if media.ends_with("/json") || media.ends_with("+json") {
            return false;
        }
    }
    false
}

/// FNV-1a, 64 bits: enough to tell two builds of a file apart, and
/// computable at compile time, so a tag costs nothing at run time.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_gets_html_and_a_client_json() {
        let chrome = "text/html,application/xhtml+xml,application/xml;q=0.9,\
                      image/avif,image/webp,*/*;q=0.8";
        assert!(wants_html(chrome));
        assert!(wants_html("TEXT/HTML"));
        assert!(wants_html("text/plain, text/html; q=0.5, application/json"));
        assert!(!wants_html(""));
        assert!(!wants_html("*/*"));
        assert!(!wants_html("application/json, text/html"));
        assert!(!wants_html("application/problem+json, text/html"));
        assert!(!wants_html("text/html;q=0, application/json"));
        assert!(!wants_html("text/html;q=0.0"));
    }

    #[test]
    fn dedent_drops_indentation_only() {
        const TEXT: &[u8] = b"a {\n  b: 1;\n\t  c: 'x  y';\n}\n  \n";
        const OUT: [u8; dedented_len(TEXT)] = dedent(TEXT);
        assert_eq!(&OUT, b"a {\nb: 1;\nc: 'x  y';\n}\n\n");
    }

    /// The route table serves exactly these files.
    #[test]
    fn every_asset_is_routed() {
        for asset in ASSETS {
            let (routes, _) = crate::http::routes::resolve(asset.path).unwrap();
            assert_eq!(routes[0].pattern, asset.path);
        }
        for pattern in crate::http::routes::labels() {
            if pattern.starts_with("/assets/") || pattern == "/docs" || pattern == "/admin" {
                assert!(ASSETS.iter().any(|a| a.path == pattern), "{pattern}");
            }
        }
    }

    #[test]
    fn every_asset_has_its_own_tag() {
        for (i, a) in ASSETS.iter().enumerate() {
            for b in &ASSETS[i + 1..] {
                assert_ne!(a.path, b.path);
                assert_ne!(a.tag, b.tag, "{} and {}", a.path, b.path);
            }
        }
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    /// Pages refer to assets by absolute path, and to nothing on another
    /// host: every `src=` and `href=` in them is ours.
    #[test]
    fn pages_load_nothing_from_another_host() {
        for page in ASSETS.iter().filter(|a| a.content_type == HTML) {
            let text = std::str::from_utf8(page.body).unwrap();
            for attribute in ["src=\"", "href=\""] {
                for (at, _) in text.match_indices(attribute) {
                    let value = &text[at + attribute.len()..];
                    let value = &value[..value.find('"').unwrap()];
                    assert!(
                        value.starts_with('/') && !value.starts_with("//")
                            || value.starts_with('#'),
                        "{} refers to {value}",
                        page.path
                    );
                    if let Some(path) = value.strip_prefix("/assets/") {
                        assert!(
                            ASSETS.iter().any(|a| a.path.ends_with(path)),
                            "{} refers to a missing {value}",
                            page.path
                        );
                    }
                }
            }
            assert!(!text.contains("<style"), "{}: inline style", page.path);
            assert!(!text.contains("style=\""), "{}: inline style", page.path);
            assert!(!text.contains("<script>"), "{}: inline script", page.path);
            let handler = text.match_indices(" on").any(|(at, _)| {
                let name = &text[at + 3..];
                let end = name.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(0);
                end > 0 && name[end..].starts_with('=')
            });
            assert!(!handler, "{}: an inline event handler", page.path);
        }
    }
}
