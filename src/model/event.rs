//! Change events: what a create, update or delete reports to webhooks (and
//! to followers of the change feed), and the body they are sent as.

use std::fmt::Write;

use serde::Serialize;

use super::Article;
use crate::util::time::rfc3339_millis;

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

/// The body of an event, in this key order.
#[derive(Serialize)]
struct EventBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    data: &'a Article,
}

/// The JSON body of an event: built once, when the change commits, and sent
/// byte for byte the same on every attempt (the signature covers it).
pub fn event_body(kind: EventType, at_millis: i64, article: &Article) -> String {
    let body = EventBody {
        kind: kind.as_str(),
        timestamp: rfc3339_millis(at_millis),
        data: article,
    };
    serde_json::to_string(&body).expect("an article always serialises")
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
    let mut id = String::from("msg_");
    for b in bytes {
        let _ = write!(id, "{b:02x}");
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
    fn message_ids_are_unique_and_plain() {
        let (a, b) = (new_message_id(), new_message_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 32);
        assert!(a.starts_with("msg_") && !a.contains('.') && !a.contains(' '));
    }
}
