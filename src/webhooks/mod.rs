//! Outgoing webhooks from a transactional outbox.
//!
//! ```text
//!  request worker ── write transaction ──► articles + webhook_events + webhook_deliveries
//!        │ after commit: Outbox::notify                  (one row per configured URL)
//!        ▼
//!  dispatcher thread ── claims due ones (15 s lease) ──► attempt threads (≤ 4 per URL)
//!        ▲                                               │ HTTP POST, 10 s deadline
//!        └──────────── outcome (success, failure, 410) ──┘
//!  dispatcher: records the outcome in a short write transaction
//! ```
//!
//! The event is written in the same transaction as the change it reports
//! (`store`), so a committed change always has its deliveries, whatever
//! happens to the process afterwards. In each process the dispatcher is the
//! only thread that reads or writes delivery state; before an attempt it
//! claims the delivery, moving its due time to the end of a lease, so that
//! another process on the same database (a replica) does not send it too.
//! Attempt threads touch no database and hold nothing a shutdown waits
//! for, so a slow receiver can neither hold a request worker nor delay a
//! stop. At shutdown the claims of attempts still running are handed back
//! (due at once: sent again after the restart, or by another replica);
//! after a crash they are sent again when their lease ends (at least once).

mod backoff;
mod client;
mod dispatcher;
mod secret;
mod url;

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::article::Article;
use crate::util::time::rfc3339_millis;

pub use dispatcher::Deliveries;
pub use secret::WebhookSecret;
pub use url::WebhookUrl;

/// How long one attempt may take, from connect to the answer's last byte.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What the write path needs to queue events: the configured URLs, those
/// that answered `410 Gone`, and the dispatcher's wake-up.
pub struct Outbox {
    urls: Vec<WebhookUrl>,
    gone: Mutex<HashSet<String>>,
    signal: Arc<Signal>,
}

impl Outbox {
    /// An outbox for these URLs (none: events are not recorded at all).
    pub fn new(urls: Vec<WebhookUrl>) -> Outbox {
        Outbox {
            urls,
            gone: Mutex::new(HashSet::new()),
            signal: Arc::new(Signal::default()),
        }
    }

    /// The URLs an event committed now is queued for: every configured one
    /// but those that answered 410 since the process started.
    pub fn live_urls(&self) -> Vec<&str> {
        if self.urls.is_empty() {
            return Vec::new();
        }
        let gone = lock(&self.gone);
        self.urls
            .iter()
            .map(WebhookUrl::as_str)
            .filter(|url| !gone.contains(*url))
            .collect()
    }

    /// The configured URLs.
    pub fn urls(&self) -> &[WebhookUrl] {
        &self.urls
    }

    /// Called after a commit that queued deliveries: wakes the dispatcher.
    pub fn notify(&self) {
        self.signal.post(|inbox| inbox.committed = true);
    }

    fn mark_gone(&self, url: &str) {
        lock(&self.gone).insert(url.to_owned());
    }
}

impl Default for Outbox {
    fn default() -> Outbox {
        Outbox::new(Vec::new())
    }
}

/// The dispatcher's mailbox: commits, attempt outcomes, stop. One mutex and
/// a condition variable, so one wait covers all three.
#[derive(Default)]
struct Signal {
    inbox: Mutex<Inbox>,
    wake: Condvar,
}

#[derive(Default)]
struct Inbox {
    committed: bool,
    stop: bool,
    outcomes: Vec<dispatcher::Outcome>,
}

impl Signal {
    fn post(&self, change: impl FnOnce(&mut Inbox)) {
        change(&mut lock(&self.inbox));
        self.wake.notify_one();
    }

    /// Waits until something arrives or `timeout` passes; takes it all.
    fn take(&self, timeout: Duration) -> Inbox {
        let inbox = lock(&self.inbox);
        let (mut inbox, _) = self
            .wake
            .wait_timeout_while(inbox, timeout, |i| {
                !i.committed && !i.stop && i.outcomes.is_empty()
            })
            .unwrap_or_else(PoisonError::into_inner);
        let stop = inbox.stop;
        let taken = std::mem::take(&mut *inbox);
        inbox.stop = stop;
        taken
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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

    #[test]
    fn gone_urls_get_no_new_events() {
        let urls = ["http://a/", "http://b/"]
            .map(|u| WebhookUrl::parse(u).unwrap())
            .to_vec();
        let outbox = Outbox::new(urls);
        assert_eq!(outbox.live_urls(), ["http://a/", "http://b/"]);
        outbox.mark_gone("http://a/");
        assert_eq!(outbox.live_urls(), ["http://b/"]);
        assert!(Outbox::default().live_urls().is_empty());
    }
}
