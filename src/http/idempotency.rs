//! Safe retries of `POST /articles` with an `Idempotency-Key`: the key's
//! syntax, the fingerprint of a body, the response saved for a replay, and
//! the keys in flight. The saved responses themselves live in the database
//! (`Store::create_article_once`), written in the same transaction as the
//! article.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::http::response::Reply;
use crate::store::SavedResponse;

/// Longest key, in characters.
pub const MAX_KEY_CHARS: usize = 255;
/// The scope of an anonymous writer's keys. User ids start at 1.
pub const ANONYMOUS_SCOPE: i64 = 0;
/// The response headers saved for a replay: what a client acts on.
/// `X-Request-Id` and `Date` belong to each answer, not to the creation.
const SAVED_HEADERS: [&str; 3] = ["Content-Type", "Location", "ETag"];

/// Whether `key` is 1 to 255 visible ASCII characters (0x21 to 0x7E).
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// SHA-256 of a canonical form of a JSON object, so that two bodies with
/// the same value have the same fingerprint whatever their key order,
/// spacing, escapes or number spelling (`1`, `1.0` and `1e0` are one number).
pub fn fingerprint(body: &Map<String, Value>) -> [u8; 32] {
    let mut canonical = Vec::new();
    write_object(body, &mut canonical);
    Sha256::digest(&canonical).into()
}

/// Compact JSON with object keys sorted by their UTF-8 bytes.
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => write_object(map, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::String(text) => write_string(text, out),
        Value::Number(number) => out.extend_from_slice(canonical_number(number).as_bytes()),
        Value::Bool(_) | Value::Null => out.extend_from_slice(value.to_string().as_bytes()),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    // Sorted here rather than trusting the map's order: serde_json keeps
    // insertion order when any crate in the build turns on `preserve_order`.
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (i, (key, item)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_string(key, out);
        out.push(b':');
        write_canonical(item, out);
    }
    out.push(b'}');
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    // serde_json escapes one way only, so equal strings give equal bytes.
    serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
}

/// Integers as integers, whatever their spelling (`1.0`, `1e2`); other
/// numbers in serde_json's shortest round-trip form.
fn canonical_number(number: &serde_json::Number) -> String {
    // Every integer-valued f64 in these ranges converts exactly, and these
    // are the ranges serde_json reads an integer literal into (i64, u64).
    const I64_MIN: f64 = -9_223_372_036_854_775_808.0;
    const U64_END: f64 = 18_446_744_073_709_551_616.0;
    match number.as_f64() {
        Some(f) if number.is_f64() && f.fract() == 0.0 && (I64_MIN..0.0).contains(&f) => {
            (f as i64).to_string()
        }
        Some(f) if number.is_f64() && f.fract() == 0.0 && (0.0..U64_END).contains(&f) => {
            (f as u64).to_string()
        }
        _ => number.to_string(),
    }
}

/// A saved response is made from a reply, and turned back into one, here:
/// the store keeps it as plain data.
impl SavedResponse {
    /// What is saved of `reply`: status, body and the headers of
    /// `SAVED_HEADERS` (moved, not copied: the body may be large).
    pub fn of(reply: Reply) -> SavedResponse {
        SavedResponse {
            status: reply.status,
            headers: reply
                .headers
                .into_iter()
                .filter(|(name, _)| saved_name(name).is_some())
                .map(|(name, value)| (name.to_owned(), value.into_owned()))
                .collect(),
            body: reply.body,
        }
    }

    /// The reply again. A header name this binary does not save (from a
    /// database written by another version) is left out.
    pub fn into_reply(self) -> Reply {
        let mut reply = Reply::empty(self.status);
        reply.body = self.body;
        for (name, value) in self.headers {
            if let Some(name) = saved_name(&name) {
                reply = reply.header(name, value);
            }
        }
        reply
    }
}

/// The static name of a saved header, any case.
fn saved_name(name: &str) -> Option<&'static str> {
    SAVED_HEADERS
        .into_iter()
        .find(|saved| saved.eq_ignore_ascii_case(name))
}

/// The keys whose first request is being processed, by (scope, key).
///
/// In-process only: it tells a retry that arrives while the first request
/// is still running to come back later (409). That is enough for one server
/// process. With several processes on one database, a concurrent retry in
/// another process waits for the write lock instead and is then answered
/// with the replay: the check that creates at most once per key is the one
/// made in the database transaction, not this set.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<(i64, String)>>);

impl InFlight {
    /// Marks (scope, key) as in flight until the returned claim is dropped;
    /// `None` if it already is.
    pub fn claim(&self, scope: i64, key: &str) -> Option<Claim<'_>> {
        let entry = (scope, key.to_owned());
        let fresh = self.lock().insert(entry.clone());
        fresh.then_some(Claim { set: self, entry })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(i64, String)>> {
        // The set is consistent after any panic: insert and remove are whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A key in flight; dropping it (also when a handler panics) frees the key.
#[derive(Debug)]
pub struct Claim<'a> {
    set: &'a InFlight,
    entry: (i64, String),
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.set.lock().remove(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn print(value: Value) -> [u8; 32] {
        fingerprint(value.as_object().expect("an object"))
    }

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters() {
        assert!(valid_key("a"));
        assert!(valid_key("!~0aZ-_.:/{}"));
        assert!(valid_key(&"k".repeat(255)));
        for bad in ["", " ", "a b", "a\tb", "é", "\x7f", &"k".repeat(256)] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn same_json_value_same_fingerprint() {
        let a = serde_json::from_str(
            r#"{"b": [1, 2.0, 1e2, -3.0, 1000000000000000, -0.0],
                "a": "\u0041", "c": {"y": null, "x": true}}"#,
        )
        .unwrap();
        let b =
            serde_json::from_str(r#"{"c":{"x":true,"y":null},"a":"A","b":[1.0,2,100,-3,1e15,0]}"#)
                .unwrap();
        assert_eq!(print(a), print(b));
    }

    #[test]
    fn one_double_spelt_two_ways_is_one_number() {
        // Needs serde_json's exact float parsing (`float_roundtrip`): its
        // default parser read these as two neighbouring doubles.
        for (short, long) in [
            ("-7.428246415244006e-40", "-7.42824641524400566e-40"),
            ("2.699038309416696e-307", "2.69903830941669601e-307"),
            ("0.1", "0.10000000000000000555"),
        ] {
            let a = serde_json::from_str(&format!("{{\"x\":{short}}}")).unwrap();
            let b = serde_json::from_str(&format!("{{\"x\":{long}}}")).unwrap();
            assert_eq!(print(a), print(b), "{short} {long}");
        }
    }

    #[test]
    fn different_json_values_differ() {
        let base = print(json!({"title": "t", "tags": ["a", "b"]}));
        for other in [
            json!({"title": "t", "tags": ["b", "a"]}),
            json!({"title": "t ", "tags": ["a", "b"]}),
            json!({"title": "t", "tags": ["a", "b"], "extra": null}),
            json!({"title": "t", "tags": "a,b"}),
            json!({"title": 1, "tags": ["a", "b"]}),
        ] {
            assert_ne!(print(other.clone()), base, "{other}");
        }
        assert_ne!(print(json!({"n": 1.5})), print(json!({"n": 1})));
        assert_ne!(print(json!({"n": "1"})), print(json!({"n": 1})));
    }

    #[test]
    fn saves_and_replays_status_headers_and_body() {
        let reply = || {
            Reply::json(201, &json!({"id": 1}))
                .header("Location", "/articles/1")
                .header("ETag", "\"1-5\"")
                .header("X-Request-Id", "not-saved")
        };
        let saved = SavedResponse::of(reply());
        assert_eq!(saved.headers.len(), 3);
        let again = saved.clone().into_reply();
        assert_eq!(again.status, 201);
        assert_eq!(again.body, reply().body);
        assert_eq!(again.header_value("etag"), Some("\"1-5\""));
        assert_eq!(again.header_value("location"), Some("/articles/1"));
        assert_eq!(again.header_value("x-request-id"), None);
        assert_eq!(SavedResponse::of(again), saved);
    }

    #[test]
    fn a_key_is_in_flight_until_its_claim_is_dropped() {
        let set = InFlight::default();
        let claim = set.claim(1, "k").unwrap();
        assert!(set.claim(1, "k").is_none());
        assert!(set.claim(2, "k").is_some(), "scoped by user");
        assert!(set.claim(1, "other").is_some());
        drop(claim);
        assert!(set.claim(1, "k").is_some());
    }
}
