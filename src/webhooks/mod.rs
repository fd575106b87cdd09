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

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use crate::util::lock;

pub use dispatcher::{Context, Deliveries};
pub use secret::WebhookSecret;
pub use url::WebhookUrl;

/// How long one attempt may take, from connect to the answer's last byte.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

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
