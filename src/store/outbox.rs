//! The transactional outbox, as the write path sees it: which webhook URLs
//! an event committed now is queued for, and whom to wake once it commits.
//! The dispatcher that sends the deliveries lives in `webhooks`.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Called after a commit that queued deliveries.
type Wake = Box<dyn Fn() + Send + Sync>;

/// The configured webhook URLs, those that answered `410 Gone`, and the
/// dispatcher's wake-up.
#[derive(Default)]
pub struct Outbox {
    urls: Vec<String>,
    gone: Mutex<HashSet<String>>,
    wake: OnceLock<Wake>,
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
