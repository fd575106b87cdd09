//! Property-based fuzzing of request-level parsing, validation and query
//! building, without a nightly toolchain: a seeded generator builds inputs
//! from the pieces the parsers care about, and each property must hold for
//! every input (no panic, plus invariants).
//!
//! - `FUZZ_CASES=5000000` for a long local run (default 20,000, times
//!   `RELIABILITY_SCALE`); `RELIABILITY_SEED` replays a run.
//! - `FUZZ_SAVE=path` appends to `path` every input whose outcomes (which
//!   parser accepted it, and how) were not seen before: candidates for the
//!   regression corpus, `corpus.txt` beside this file, which every test
//!   run checks in full.

mod head;
// The same generator as the integration tests' (one file for both).
#[path = "../../../tests/support/rng.rs"]
mod rng;

use std::collections::HashSet;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rng::Rng;
use serde_json::{Map, Value};

use super::auth::{credentials, Credentials};
use super::conditional::{etag, Preconditions, TagList};
use super::idempotency::{fingerprint, valid_key};
use super::pagination::link_header;
use super::request::{sane_request_id, split_url};
use super::routes;
use crate::model::query::{MAX_PAGE, MAX_PER_PAGE};
use crate::model::{parse_change, Article, ArticleQuery, Invalid, WriteKind};
use crate::util::urlencoded;

/// What random inputs are made of: the characters, escapes and words the
/// parsers treat specially, and some that no parser expects.
const PIECES: &[&str] = &[
    "%",
    "%2",
    "%zz",
    "%20",
    "%2B",
    "%26",
    "%3D",
    "%FF",
    "%C3%A9",
    "%F0%9F%98%80",
    "%00",
    "%0D%0A",
    "+",
    "&",
    "=",
    "?",
    "/",
    "//",
    "..",
    ".",
    ";",
    "#",
    ",",
    " ",
    "\t",
    "\r\n",
    "\0",
    "\"",
    "'",
    "W/",
    "*",
    "-",
    "_",
    "~",
    "0",
    "1",
    "9",
    "007",
    "18446744073709551616",
    "1000000000",
    "9223372036854775807",
    "a",
    "Z",
    "é",
    "\u{1F600}",
    "\u{FFFD}",
    "\u{202E}",
    "\u{85}",
    "\u{7F}",
    "bearer ",
    "Bearer ",
    "BEARER",
    "Basic ",
    "art_",
    "articles",
    "/articles",
    "/articles/",
    "me",
    "healthz",
    "page",
    "per_page",
    "tag",
    "author",
    "q",
    "sort",
    "title",
    "-title",
    "created_at",
    "-updated_at",
    "NEAR(",
    "OR",
    "\"x\"",
    "W/\"1-2\"",
    ", ",
];

/// A random string: mostly pieces, sometimes raw bytes or raw characters.
fn random_text(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 | 1 => {
            let bytes: Vec<u8> = (0..rng.below(24)).map(|_| rng.next_u64() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        2 => (0..rng.below(12))
            .filter_map(|_| char::from_u32(rng.below(0x3_0000) as u32))
            .collect(),
        _ => (0..rng.below(12)).map(|_| *rng.pick(PIECES)).collect(),
    }
}

/// A random JSON value, at most `depth` deep.
fn random_json(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => match rng.below(3) {
            0 => Value::from(rng.next_u64()),
            1 => Value::from(rng.next_u64() as i64),
            _ => Value::from(f64::from_bits(rng.next_u64())), // NaN and infinities become null
        },
        3 | 4 => Value::String(random_text(rng)),
        5 => Value::Array(
            (0..rng.below(5))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(random_object(rng, depth - 1)),
    }
}

fn random_object(rng: &mut Rng, depth: u32) -> Map<String, Value> {
    let mut map = Map::new();
    for _ in 0..rng.below(4) {
        map.insert(random_text(rng), random_json(rng, depth));
    }
    map
}

/// A random article body: the fields validation reads, often nearly valid.
fn random_body(rng: &mut Rng) -> Map<String, Value> {
    let mut body = random_object(rng, 1);
    let text = |rng: &mut Rng| match rng.below(6) {
        0 => Value::String("x".repeat(rng.between(195, 205) as usize)),
        1 => Value::String("\u{1F600}".repeat(rng.between(195, 205) as usize)),
        2 => random_json(rng, 1),
        _ => Value::String(random_text(rng)),
    };
    for name in ["title", "content"] {
        if rng.chance(85) {
            body.insert(name.into(), text(rng));
        }
    }
    if rng.chance(70) {
        let tags = match rng.below(5) {
            0 => random_json(rng, 2),
            1 => Value::Array(
                (0..25)
                    .map(|n| Value::from(format!("t{}", n % 22)))
                    .collect(),
            ),
            _ => Value::Array((0..rng.below(6)).map(|_| text(rng)).collect()),
        };
        body.insert("tags".into(), tags);
    }
    body
}

/// `urlencoded`: never panics; `encode` is URL- and header-safe and
/// `decode` undoes it.
fn check_urlencoded(input: &str) {
    let _ = urlencoded::parse(input);
    let decoded = urlencoded::decode(input);
    for text in [input, decoded.as_str()] {
        let encoded = urlencoded::encode(text);
        let safe = |b: u8| b.is_ascii_alphanumeric() || b"-._~%+".contains(&b);
        assert!(encoded.bytes().all(safe), "encode({text:?}) = {encoded:?}");
        assert_eq!(urlencoded::decode(&encoded), text, "round trip of {text:?}");
    }
}

/// `ArticleQuery::parse` and `link_header` on `input` as a query string.
/// Returns the outcome, for the corpus signature.
fn check_query(input: &str, rng: &mut Rng) -> String {
    let params = urlencoded::parse(input);
    let query = match ArticleQuery::parse(&params) {
        Ok(query) => query,
        Err(Invalid(errors)) => {
            assert!(!errors.is_empty());
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert!(
                fields
                    .iter()
                    .all(|f| ["page", "per_page", "sort"].contains(f)),
                "{fields:?}"
            );
            return format!("422{fields:?}");
        }
    };
    assert!((1..=MAX_PAGE).contains(&query.page));
    assert!((1..=MAX_PER_PAGE).contains(&query.per_page));
    assert!(query.page.checked_mul(u64::from(query.per_page)).is_some());
    if let Some(words) = &query.words {
        let searchable =
            |w: &String| !w.contains(char::is_whitespace) && w.chars().any(char::is_alphanumeric);
        assert!(words.iter().all(searchable), "{words:?}");
    }
    for total in [0, rng.below(10_000), rng.next_u64() >> 1] {
        check_links(&params, &query, total);
    }
    format!(
        "ok:{}{}{}",
        query.tag.is_some(),
        query.author.is_some(),
        query.words.as_ref().map_or(0, Vec::len).min(2)
    )
}

/// Every `Link` URL is printable ASCII, keeps the other parameters in
/// order and points to a page from 1 to the last.
fn check_links(params: &[(String, String)], query: &ArticleQuery, total: u64) {
    let link = link_header("/articles", params, query, total);
    assert!(link.bytes().all(|b| (b' '..=b'~').contains(&b)), "{link:?}");
    assert!(link.contains("rel=\"first\"") && link.contains("rel=\"last\""));
    let last = total.div_ceil(u64::from(query.per_page)).max(1);
    let others: Vec<&(String, String)> = params.iter().filter(|(n, _)| n != "page").collect();
    for part in link.split(", ") {
        let url = part
            .strip_prefix('<')
            .and_then(|p| p.split_once('>'))
            .unwrap()
            .0;
        let (path, query_string) = split_url(url);
        assert_eq!(path, "/articles");
        let mut again = urlencoded::parse(query_string);
        let (name, page) = again.pop().unwrap();
        assert_eq!(name, "page");
        let page: u64 = page.parse().unwrap();
        assert!((1..=last).contains(&page), "page {page} of {last}: {link}");
        assert_eq!(again.iter().collect::<Vec<_>>(), others, "{link}");
    }
}

/// `routes::resolve`: an article id is a positive 63-bit decimal, and
/// nothing but the exact patterns resolves.
fn check_route(input: &str) -> &'static str {
    match routes::resolve(input) {
        Ok((_, Some(id))) => {
            let digits = input.strip_prefix("/articles/").expect(input);
            assert!(
                id > 0 && digits.bytes().all(|b| b.is_ascii_digit()),
                "{input:?}"
            );
            assert_eq!(digits.parse::<i64>().unwrap(), id);
            "article"
        }
        Ok((found, None)) => {
            assert!(found.iter().all(|route| route.pattern == input));
            "route"
        }
        Err(err) => {
            assert_eq!(err.status(), 404);
            "404"
        }
    }
}

/// `credentials`: a bearer token is the non-empty, space-free rest of
/// `Bearer <token>`, whatever the scheme's case.
fn check_credentials(input: &str) -> &'static str {
    match credentials(Some(input)) {
        Credentials::Bearer(token) => {
            assert!(
                input.len() > 7 && input[..7].eq_ignore_ascii_case("bearer "),
                "{input:?}"
            );
            assert_eq!(token, &input[7..]);
            assert!(!token.is_empty() && !token.contains(char::is_whitespace));
            "bearer"
        }
        Credentials::Malformed => "malformed",
        Credentials::None => panic!("a header is never no credentials"),
    }
}

/// `If-Match`/`If-None-Match` parsing and evaluation never panic; tags are
/// quoted; a strong match is also a weak one; an ETag matches itself.
fn check_tag_list(input: &str, rng: &mut Rng) -> String {
    let article = Article {
        id: 1 + (rng.next_u64() >> 2) as i64,
        title: String::new(),
        content: String::new(),
        tags: Vec::new(),
        author: None,
        created_at: 0,
        updated_at: (rng.next_u64() >> 2) as i64,
    };
    let current = etag(&article);
    let list = TagList::parse(input);
    if let TagList::Tags(tags) = &list {
        assert!(tags
            .iter()
            .all(|t| t.opaque.len() >= 2 && t.opaque.starts_with('"') && t.opaque.ends_with('"')));
    }
    for tag in [current.as_str(), input] {
        assert!(
            !list.matches_strong(tag) || list.matches_weak(tag),
            "{input:?} {tag:?}"
        );
    }
    assert!(TagList::parse(&current).matches_strong(&current));
    let weak = format!("W/{current}");
    assert!(
        TagList::parse(&weak).matches_weak(&current)
            && !TagList::parse(&weak).matches_strong(&current)
    );
    let conditions = Preconditions::parse(Some(input), Some(input));
    let verdicts = [
        conditions.evaluate(&current, true),
        conditions.evaluate(&current, false),
    ];
    let kind = match list {
        TagList::Any => "any",
        TagList::Tags(tags) => {
            if tags.is_empty() {
                "empty"
            } else {
                "tags"
            }
        }
        TagList::Invalid => "invalid",
    };
    format!("{kind}{verdicts:?}")
}

/// Idempotency keys, request ids and URL splitting.
fn check_keys(input: &str) -> String {
    let key = valid_key(input);
    if key {
        assert!((1..=255).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_graphic()));
    }
    let id = sane_request_id(input);
    if id {
        assert!((1..=128).contains(&input.len()));
        assert!(input
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
    }
    let (path, query) = split_url(input);
    match input.split_once('?') {
        Some(_) => assert_eq!(format!("{path}?{query}"), input),
        None => assert_eq!((path, query), (input, "")),
    }
    format!("{key}{id}")
}

/// Every text property on one input; returns the outcomes.
fn check_text(input: &str, rng: &mut Rng) -> String {
    check_urlencoded(input);
    let path = format!("/{input}");
    [
        check_query(input, rng),
        check_route(input).to_owned(),
        check_route(&path).to_owned(),
        check_credentials(input).to_owned(),
        check_tag_list(input, rng),
        check_keys(input),
    ]
    .join("|")
}

/// `parse_change` on a body: every accepted change is valid; every
/// rejection names fields of the body. The fingerprint survives a round
/// trip through JSON text.
fn check_body(body: &Map<String, Value>) -> String {
    let mut outcome = String::new();
    for kind in [WriteKind::Create, WriteKind::Replace, WriteKind::Patch] {
        match parse_change(body, kind) {
            Ok(change) => {
                let full = kind != WriteKind::Patch;
                assert!(
                    !full
                        || (change.title.is_some()
                            && change.content.is_some()
                            && change.tags.is_some())
                );
                if let Some(title) = &change.title {
                    let chars = title.chars().count();
                    assert!((1..=200).contains(&chars) && !title.trim().is_empty());
                    assert!(!title.chars().any(char::is_control), "{title:?}");
                }
                if let Some(content) = &change.content {
                    assert!(!content.trim().is_empty() && !content.contains('\0'));
                }
                if let Some(tags) = &change.tags {
                    assert!(
                        tags.len() <= 20 && tags.windows(2).all(|w| w[0] < w[1]),
                        "{tags:?}"
                    );
                    for tag in tags {
                        assert!((1..=50).contains(&tag.chars().count()) && tag.trim() == tag);
                        assert!(!tag.chars().any(char::is_control));
                    }
                }
                outcome.push('o');
            }
            Err(Invalid(errors)) => {
                assert!(!errors.is_empty());
                for error in &errors {
                    let field = error.field.split('[').next().unwrap();
                    assert!(["title", "content", "tags"].contains(&field), "{error:?}");
                }
                outcome.push('v');
            }
        }
    }
    let text = serde_json::to_string(body).unwrap();
    let again: Map<String, Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(fingerprint(body), fingerprint(&again));
    outcome
}

/// One corpus entry: a JSON string is a text input, a JSON object a body.
fn check_entry(entry: &Value, rng: &mut Rng) -> String {
    match entry {
        Value::String(text) => check_text(text, rng),
        Value::Object(body) => check_body(body),
        other => panic!("a corpus entry is a string or an object, not {other}"),
    }
}

/// Runs `check_entry` and turns a panic into a message naming the input
/// as a corpus line.
fn check_reported(entry: &Value, rng: &mut Rng) -> String {
    match catch_unwind(AssertUnwindSafe(|| check_entry(entry, rng))) {
        Ok(outcome) => outcome,
        Err(_) => {
            panic!("a property failed for this input; add it to src/http/fuzz/corpus.txt:\n{entry}")
        }
    }
}

#[test]
fn regression_corpus_holds_every_property() {
    let corpus = include_str!("corpus.txt");
    let mut rng = Rng::new(1);
    let mut count = 0;
    for line in corpus
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let entry: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        check_reported(&entry, &mut rng);
        count += 1;
    }
    assert!(count >= 50, "the corpus has only {count} entries");
}

#[test]
fn random_inputs_hold_every_property() {
    let seed = rng::seed("fuzz");
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000 * rng::scale());
    let mut save = std::env::var("FUZZ_SAVE").ok().map(|path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap()
    });
    let mut rng = Rng::new(seed);
    let mut seen = HashSet::new();
    for _ in 0..cases {
        let entry = match rng.below(4) {
            0 => Value::Object(random_body(&mut rng)),
            _ => Value::String(random_text(&mut rng)),
        };
        let outcome = check_reported(&entry, &mut rng);
        if seen.insert(outcome) {
            if let Some(file) = &mut save {
                writeln!(file, "{entry}").unwrap();
            }
        }
    }
    println!(
        "fuzz: {cases} cases, {} distinct outcomes, 0 failures",
        seen.len()
    );
}
