//! The delivery dispatcher: one thread that claims due deliveries (a lease
//! that keeps other dispatchers on the same database away), starts an
//! attempt thread for each (at most `MAX_IN_FLIGHT_PER_URL` per URL, so one
//! dead receiver cannot starve another), and records every outcome.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::backoff::{after_failure, parse_retry_after, random_jitter, Next};
use super::client::{self, Answer};
use super::{Signal, WebhookSecret, WebhookUrl, ATTEMPT_TIMEOUT};
use crate::metrics::DeliveryOutcome;
use crate::metrics::Metrics;
use crate::store::{DeliveryEnd, PendingDelivery, Store, StoreError};
use crate::util::time::now_millis;

/// Most attempts in flight to one URL at once.
pub const MAX_IN_FLIGHT_PER_URL: usize = 4;
/// Longest sleep with nothing due. (Old events are pruned by the change
/// feed's watcher, `feed::Watcher`, which keeps any with a pending delivery.)
const IDLE_WAKE: Duration = Duration::from_secs(60);
/// Pause after a database error, so a failing database is not spun on.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// How long a claimed delivery is kept from other dispatchers: longer than
/// an attempt can take. An attempt that outlives its process (a crash) is
/// made again when the lease ends.
const LEASE_MILLIS: i64 = ATTEMPT_TIMEOUT.as_millis() as i64 + 5_000;
/// Shortest wait for a delivery due now that this dispatcher did not get
/// (see `wait_until`).
const MIN_WAIT_MILLIS: i64 = 10;

/// The result of one attempt, posted back to the dispatcher.
pub(super) struct Outcome {
    lane: usize,
    delivery: PendingDelivery,
    result: Result<Answer, String>,
}

/// The deliveries to one URL.
struct Lane {
    url: WebhookUrl,
    in_flight: HashSet<i64>,
    /// It answered 410: nothing more is sent to it until restart.
    gone: bool,
    /// After a failed outcome write: a pause, so that a failing database is
    /// not hammered (the delivery itself stays claimed until its lease
    /// ends, then is sent again).
    paused_until: Option<Instant>,
}

/// What the dispatcher works with.
pub struct Context {
    /// The database, whose outbox it delivers.
    pub store: Arc<Store>,
    /// Where attempts are counted.
    pub metrics: Arc<Metrics>,
    /// The URLs configured now.
    pub urls: Vec<WebhookUrl>,
    /// The signing secret, if any.
    pub secret: Option<WebhookSecret>,
}

/// The dispatcher's own view: the context and its mailbox.
struct Dispatcher {
    context: Context,
    signal: Arc<Signal>,
}

/// The running dispatcher.
pub struct Deliveries {
    thread: JoinHandle<()>,
    signal: Arc<Signal>,
}

impl Deliveries {
    /// Prunes old events, then starts the dispatcher if there is anything to
    /// deliver: a configured URL, or deliveries an earlier run left pending
    /// (they were promised when their change committed, so they are sent
    /// even if their URL is no longer configured).
    pub fn start(context: Context) -> io::Result<Option<Deliveries>> {
        let mut urls = context.urls.clone();
        match context.store.deliveries().pending_webhook_urls() {
            Ok(pending) => {
                for text in pending {
                    match WebhookUrl::parse(&text) {
                        Ok(url) if !urls.contains(&url) => urls.push(url),
                        Ok(_) => {}
                        Err(err) => log::warn!("webhooks: pending deliveries to a bad URL: {err}"),
                    }
                }
            }
            Err(err) => log::error!("webhooks: reading pending deliveries failed: {err}"),
        }
        if urls.is_empty() {
            return Ok(None);
        }
        let shown: Vec<String> = urls.iter().map(ToString::to_string).collect();
        log::info!("webhooks: delivering to {}", shown.join(", "));
        let lanes = urls
            .into_iter()
            .map(|url| Lane {
                url,
                in_flight: HashSet::new(),
                gone: false,
                paused_until: None,
            })
            .collect();
        let signal = Arc::new(Signal::default());
        let woken = Arc::clone(&signal);
        context
            .store
            .outbox()
            .on_commit(move || woken.post(|inbox| inbox.committed = true));
        let dispatcher = Dispatcher {
            context,
            signal: Arc::clone(&signal),
        };
        let thread = thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || dispatch(&dispatcher, lanes))?;
        Ok(Some(Deliveries { thread, signal }))
    }

    /// Stops the dispatcher, waiting until `deadline` at most for the short
    /// database writes it may be in and for handing back the claims of
    /// attempts in flight (due again at once: after the restart, or at
    /// another replica); never for an attempt itself.
    pub fn stop(self, deadline: Instant) {
        self.signal.post(|inbox| inbox.stop = true);
        while !self.thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            log::warn!("webhooks: the dispatcher did not stop in time");
        }
    }
}

fn dispatch(dispatcher: &Dispatcher, mut lanes: Vec<Lane>) {
    let mut wait = Duration::ZERO;
    loop {
        let inbox = dispatcher.signal.take(wait);
        if inbox.stop {
            // Abandoned attempts are due again at once, here after a
            // restart or at another replica.
            for lane in &lanes {
                let events: Vec<i64> = lane.in_flight.iter().copied().collect();
                if !events.is_empty() {
                    release(dispatcher, lane.url.as_str(), &events);
                }
            }
            return;
        }
        for outcome in inbox.outcomes {
            record(dispatcher, &mut lanes, outcome);
        }
        wait = lanes
            .iter_mut()
            .enumerate()
            .filter_map(|(index, lane)| launch_due(dispatcher, index, lane))
            .fold(IDLE_WAKE, Duration::min);
    }
}

/// Starts the due attempts of one lane, as far as it has free slots.
/// Returns how long until its next delivery is due, if that is known and
/// matters (a full lane is woken by an outcome instead).
fn launch_due(dispatcher: &Dispatcher, index: usize, lane: &mut Lane) -> Option<Duration> {
    let free = MAX_IN_FLIGHT_PER_URL.saturating_sub(lane.in_flight.len());
    if lane.gone || free == 0 {
        return None;
    }
    if let Some(left) = lane
        .paused_until
        .and_then(|until| until.checked_duration_since(Instant::now()))
    {
        return Some(left);
    }
    // A read first: a claim is a write transaction, which with nothing due
    // would only compete with the API's writes (for SQLite's one writer).
    match next_due(dispatcher, lane) {
        Ok(Some(at)) if at <= now_millis() => {}
        Ok(due) => return due.map(wait_until),
        Err(pause) => return Some(pause),
    }
    let url = lane.url.as_str();
    let now = now_millis();
    let claimed = match dispatcher.context.store.deliveries().claim_deliveries(
        url,
        free,
        now,
        now + LEASE_MILLIS,
    ) {
        Ok(claimed) => claimed,
        Err(err) => {
            log::error!(
                "webhooks: claiming deliveries to {} failed: {err}",
                lane.url
            );
            return Some(ERROR_PAUSE);
        }
    };
    let mut claimed = claimed.into_iter();
    while let Some(delivery) = claimed.next() {
        let event = delivery.event;
        let attempt = Attempt {
            lane: index,
            url: lane.url.clone(),
            delivery,
            secret: dispatcher.context.secret.clone(),
            signal: Arc::clone(&dispatcher.signal),
        };
        if let Err(err) = thread::Builder::new()
            .name("webhook-attempt".into())
            .spawn(move || attempt.run())
        {
            log::warn!("webhooks: could not start an attempt thread: {err}");
            let unsent: Vec<i64> = std::iter::once(event)
                .chain(claimed.map(|delivery| delivery.event))
                .collect();
            release(dispatcher, url, &unsent);
            return Some(ERROR_PAUSE);
        }
        lane.in_flight.insert(event);
    }
    if lane.in_flight.len() >= MAX_IN_FLIGHT_PER_URL {
        return None;
    }
    match next_due(dispatcher, lane) {
        Ok(due) => due.map(wait_until),
        Err(pause) => Some(pause),
    }
}

/// When the lane's soonest pending delivery is due (`None`: nothing is
/// pending), or, after a failed read, the pause before the next try.
fn next_due(dispatcher: &Dispatcher, lane: &Lane) -> Result<Option<i64>, Duration> {
    dispatcher
        .context
        .store
        .deliveries()
        .next_delivery_due(lane.url.as_str())
        .map_err(|err| {
            log::error!("webhooks: reading deliveries to {} failed: {err}", lane.url);
            ERROR_PAUSE
        })
}

/// How long to wait for a delivery due at `at`: never less than
/// `MIN_WAIT_MILLIS`, since one due now that this dispatcher did not claim
/// is being claimed by another replica at this moment.
fn wait_until(at: i64) -> Duration {
    Duration::from_millis((at - now_millis()).max(MIN_WAIT_MILLIS) as u64)
}

/// Gives claimed deliveries back, due at once.
fn release(dispatcher: &Dispatcher, url: &str, events: &[i64]) {
    if let Err(err) =
        dispatcher
            .context
            .store
            .deliveries()
            .release_deliveries(url, events, now_millis())
    {
        // They are retried when their lease ends.
        log::warn!("webhooks: releasing deliveries to {url} failed: {err}");
    }
}

/// One attempt, on its own thread: it touches no database, so nothing ever
/// waits for it; its outcome goes back to the dispatcher.
struct Attempt {
    lane: usize,
    url: WebhookUrl,
    delivery: PendingDelivery,
    secret: Option<WebhookSecret>,
    signal: Arc<Signal>,
}

impl Attempt {
    fn run(self) {
        let id = &self.delivery.webhook_id;
        let body = self.delivery.body.as_bytes();
        let timestamp = now_millis() / 1000;
        let mut headers = vec![
            ("Content-Type", "application/json".to_owned()),
            ("webhook-id", id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
        ];
        if let Some(secret) = &self.secret {
            headers.push(("webhook-signature", secret.sign(id, timestamp, body)));
        }
        let result = client::post(&self.url, &headers, body, ATTEMPT_TIMEOUT);
        let outcome = Outcome {
            lane: self.lane,
            delivery: self.delivery,
            result,
        };
        self.signal.post(|inbox| inbox.outcomes.push(outcome));
    }
}

/// Records, logs and counts the outcome of an attempt. Counted after the
/// write, so a scrape that sees the count also sees the backlog without it.
fn record(dispatcher: &Dispatcher, lanes: &mut [Lane], outcome: Outcome) {
    let lane = &mut lanes[outcome.lane];
    lane.in_flight.remove(&outcome.delivery.event);
    let status = outcome.result.as_ref().ok().map(|answer| answer.status);
    let now = now_millis();
    let (counted, written) = match status {
        Some(200..=299) => {
            let url = lane.url.as_str();
            let written = dispatcher.context.store.deliveries().finish_delivery(
                outcome.delivery.event,
                url,
                DeliveryEnd::Delivered,
                now,
            );
            (DeliveryOutcome::Success, written.map(drop))
        }
        // Its deliveries were all dropped when the first 410 came back.
        Some(410) if lane.gone => (DeliveryOutcome::Gone, Ok(())),
        _ if lane.gone => (DeliveryOutcome::Failure, Ok(())),
        Some(410) => (DeliveryOutcome::Gone, gone(dispatcher, lane, &outcome, now)),
        _ => failed(dispatcher, lane, &outcome, now),
    };
    dispatcher.context.metrics.delivery(counted);
    if let Err(err) = written {
        // The delivery stays claimed until its lease ends, then is sent
        // again (at least once).
        log::error!(
            "webhooks: recording an attempt to {} failed: {err}",
            lane.url
        );
        lane.paused_until = Some(Instant::now() + ERROR_PAUSE);
    }
}

/// A 410: the URL is unsubscribed until restart, its pending deliveries
/// dropped.
fn gone(
    dispatcher: &Dispatcher,
    lane: &mut Lane,
    outcome: &Outcome,
    now: i64,
) -> Result<(), StoreError> {
    lane.gone = true;
    let url = lane.url.as_str();
    dispatcher.context.store.outbox().mark_gone(url);
    let dropped = dispatcher.context.store.deliveries().finish_delivery(
        outcome.delivery.event,
        url,
        DeliveryEnd::Gone,
        now,
    )?;
    log::warn!(
        "webhook {} answered 410 Gone to {}: its {dropped} other pending deliveries are \
         dropped and it is sent nothing more until restart",
        lane.url,
        outcome.delivery.webhook_id
    );
    Ok(())
}

/// Any other answer or none: retry later, or give up after 24 hours.
fn failed(
    dispatcher: &Dispatcher,
    lane: &Lane,
    outcome: &Outcome,
    now: i64,
) -> (DeliveryOutcome, Result<(), StoreError>) {
    let (reason, retry_after) = match &outcome.result {
        Ok(answer) => (
            format!("status {}", answer.status),
            answer
                .retry_after
                .as_deref()
                .and_then(|value| parse_retry_after(value, now)),
        ),
        Err(err) => (err.clone(), None),
    };
    let delivery = &outcome.delivery;
    let (id, attempts) = (&delivery.webhook_id, delivery.attempts + 1);
    let url = lane.url.as_str();
    let jitter = random_jitter();
    match after_failure(delivery.created_at, now, attempts, retry_after, jitter) {
        Next::RetryAt(at) => {
            log::warn!(
                "webhook {} failed for {id} ({reason}), attempt {attempts}; next in {:.1} s",
                lane.url,
                (at - now) as f64 / 1000.0
            );
            let written = dispatcher.context.store.deliveries().retry_delivery(
                outcome.delivery.event,
                url,
                at,
            );
            (DeliveryOutcome::Failure, written)
        }
        Next::GiveUp => {
            log::warn!(
                "webhook {} failed for {id} ({reason}); abandoned after {attempts} attempts \
                 over 24 hours",
                lane.url
            );
            let written = dispatcher.context.store.deliveries().finish_delivery(
                outcome.delivery.event,
                url,
                DeliveryEnd::Expired,
                now,
            );
            (DeliveryOutcome::Expired, written.map(drop))
        }
    }
}
