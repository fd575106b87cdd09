//! The transactional outbox, as the write path sees it: which webhook URLs
//! an event committed now is queued for, and whom to tell once it commits:
//! the webhook dispatcher (in `webhooks`) and the change feed's followers.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use super::feed::Feed;
use crate::model::Article;

/// Called after a commit that queued deliveries.
type Wake = Box<dyn Fn() + Send + Sync>;

/// What a write recorded in its transaction: its event's `seq`, and
/// whether deliveries were queued for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) seq: i64,
    pub(crate) deliveries: bool,
}

/// The configured webhook URLs, those that answered `410 Gone`, the
/// dispatcher's wake-up, and the change feed.
#[derive(Default)]
pub struct Outbox {
    urls: Vec<String>,
    gone: Mutex<HashSet<String>>,
    wake: OnceLock<Wake>,
    feed: Feed,
}

impl Outbox {
    /// An outbox for these URLs (none: no delivery is queued).
    pub fn new(urls: Vec<String>) -> Outbox {
        Outbox {
            urls,
            ..Outbox::default()
        }
    }

    /// The URLs an event committed now is queued for: every configured one
    /// but those that answered 410 since the process started.
    pub fn live_urls(&self) -> Vec<&str> {
        if self.urls.is_empty() {
            return Vec::new();
        }
        let gone = self.gone.lock().unwrap_or_else(PoisonError::into_inner);
        self.urls
            .iter()
            .map(String::as_str)
            .filter(|url| !gone.contains(*url))
            .collect()
    }

    /// Sends nothing more to `url` until restart (it answered 410 Gone).
    pub fn mark_gone(&self, url: &str) {
        self.gone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(url.to_owned());
    }

    /// Sets what a commit that queued deliveries calls (the dispatcher's
    /// wake-up); only the first call counts.
    pub fn on_commit(&self, wake: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(wake));
    }

    /// Called after a commit that queued deliveries.
    pub fn notify(&self) {
        if let Some(wake) = self.wake.get() {
            wake();
        }
    }

    /// Called after the commit of a write that recorded `recorded`: the
    /// feed's followers learn of it, and the dispatcher too if it has
    /// deliveries to make.
    pub(crate) fn committed(&self, recorded: Recorded) {
        self.feed.publish(recorded.seq);
        if recorded.deliveries {
            self.notify();
        }
    }

    /// `committed`, for a write that returned `(value, recorded)`: returns
    /// the value.
    pub(crate) fn after_commit<T>(&self, (value, recorded): (T, Recorded)) -> T {
        self.committed(recorded);
        value
    }

    /// The change feed's news in this process.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }
}

/// What the feed's `tag` and `author` filters match an event by: the tags
/// before and after the change (joined by U+001F, as in `articles.tags`),
/// and the author's username in lower case.
pub(crate) fn match_keys(
    article: &Article,
    tags_before: Option<&[String]>,
) -> (Option<String>, Option<String>) {
    let mut tags: Vec<&str> = article.tags.iter().map(String::as_str).collect();
    for tag in tags_before.unwrap_or_default() {
        if !tags.contains(&tag.as_str()) {
            tags.push(tag);
        }
    }
    let tags = (!tags.is_empty()).then(|| tags.join("\u{1f}"));
    let author = article.author.as_ref().map(|a| a.username.to_lowercase());
    (tags, author)
}

/// The stored form of `match_keys`, read back.
pub(crate) fn split_tags(joined: Option<String>) -> Vec<String> {
    joined
        .map(|joined| joined.split('\u{1f}').map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gone_urls_get_no_new_events() {
        let outbox = Outbox::new(vec!["http://a/".into(), "http://b/".into()]);
        assert_eq!(outbox.live_urls(), ["http://a/", "http://b/"]);
        outbox.mark_gone("http://a/");
        assert_eq!(outbox.live_urls(), ["http://b/"]);
        assert!(Outbox::default().live_urls().is_empty());
    }

    #[test]
    fn a_commit_wakes_whoever_asked() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;

        let outbox = Outbox::default();
        outbox.notify();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        outbox.on_commit(move || {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        outbox.notify();
        assert_eq!(woken.load(Ordering::Relaxed), 1);
    }
}
