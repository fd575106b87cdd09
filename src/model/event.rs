//! Change events: what a create, update or delete reports to webhooks (and
//! to followers of the change feed), and the body they are sent as.

use super::Article;
use crate::util::time::write_rfc3339_millis;

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// `POST /articles` created an article.
    Created,
    /// A `PUT` or `PATCH` answered 200.
    Updated,
    /// `DELETE` removed an article.
    Deleted,
}

impl EventType {
    /// The type named `name` (`article.created`, ...), if any.
    pub fn parse(name: &str) -> Option<EventType> {
        [EventType::Created, EventType::Updated, EventType::Deleted]
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The `type` field of the body.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "article.created",
            EventType::Updated => "article.updated",
            EventType::Deleted => "article.deleted",
        }
    }
}

/// The JSON body of an event, `{"type", "timestamp", "data"}` in this
/// order: built once, when the change commits, and sent byte for byte the
/// same on every attempt (the signature covers it). Written as
/// `Article::to_json` writes an article, which is several times faster than
/// serde for the one thing every write now does; a test holds it equal to
/// serde's.
pub fn event_body(kind: EventType, at_millis: i64, article: &Article) -> String {
    let mut timestamp = [0u8; 24];
    write_rfc3339_millis(at_millis, &mut timestamp);
    let mut out = Vec::with_capacity(article.json_size_hint() + 80);
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_str().as_bytes());
    out.extend_from_slice(b"\",\"timestamp\":\"");
    out.extend_from_slice(&timestamp);
    out.extend_from_slice(b"\",\"data\":");
    article.write_json(&mut out);
    out.push(b'}');
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// A new `webhook-id`: `msg_` and 128 random bits in hex (no `.`, no space,
/// unique across databases, so receivers can deduplicate safely).
pub fn new_message_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Unreachable on Linux; still unique within this process.
        let fallback = crate::util::ids::request_id();
        return format!("msg_{}", fallback.replace('-', "_"));
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(4 + 32);
    id.push_str("msg_");
    for b in bytes {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 15)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_type_timestamp_data_in_order() {
        let article = Article {
            id: 1,
            title: "t".into(),
            content: "c".into(),
            tags: vec![],
            author: None,
            created_at: 0,
            updated_at: 0,
        };
        let body = event_body(EventType::Deleted, 1_795_556_649_123, &article);
        assert!(
            body.starts_with(
                r#"{"type":"article.deleted","timestamp":"2026-11-24T21:44:09.123Z","data":{"id":1,"#
            ),
            "{body}"
        );
    }

    #[test]
    fn bodies_are_what_serde_writes() {
        #[derive(serde::Serialize)]
        struct EventBody<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            timestamp: String,
            data: &'a Article,
        }
        let article = Article {
            id: 9,
            title: "\"quoted\" \\ back\u{7f}slash".into(),
            content: "line\nbreak\ttab \u{1}\u{1f} é 漢字 🦀 \u{2028}".into(),
            tags: vec!["a b".into(), "ü".into()],
            author: Some(crate::model::article::Author {
                id: 3,
                username: "Zoë".into(),
            }),
            created_at: 1,
            updated_at: 1_795_556_649_123,
        };
        for kind in [EventType::Created, EventType::Updated, EventType::Deleted] {
            let serde = serde_json::to_string(&EventBody {
                kind: kind.as_str(),
                timestamp: crate::util::time::rfc3339_millis(article.updated_at),
                data: &article,
            })
            .unwrap();
            assert_eq!(event_body(kind, article.updated_at, &article), serde);
        }
    }

    #[test]
    fn message_ids_are_unique_and_plain() {
        let (a, b) = (new_message_id(), new_message_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 32);
        assert!(a.starts_with("msg_") && !a.contains('.') && !a.contains(' '));
        assert!(a[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }
}
