//! The delivery dispatcher: one thread that finds due deliveries, starts an
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
use crate::store::{DeliveryEnd, PendingDelivery};
use crate::time::now_millis;
use crate::App;

/// Most attempts in flight to one URL at once.
pub const MAX_IN_FLIGHT_PER_URL: usize = 4;
/// How long an event is kept once none of its deliveries is pending,
/// counted from the change it reports.
pub const RETAIN_EVENTS: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest sleep with nothing due; old events are pruned this often.
const IDLE_WAKE: Duration = Duration::from_secs(60);
/// Events deleted per pruning transaction (each one short).
const PRUNE_BATCH: usize = 500;
/// Pause after a database error, so a failing database is not spun on.
const ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The result of one attempt, posted back to the dispatcher.
pub(super) struct Outcome {
    lane: usize,
    event: i64,
    delivery: PendingDelivery,
    result: Result<Answer, String>,
}

/// The deliveries to one URL.
struct Lane {
    url: WebhookUrl,
    in_flight: HashSet<i64>,
    /// It answered 410: nothing more is sent to it until restart.
    gone: bool,
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
    pub fn start(app: Arc<App>) -> io::Result<Option<Deliveries>> {
        prune(&app);
        let mut urls = app.outbox.urls().to_vec();
        match app.store.pending_webhook_urls() {
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
            })
            .collect();
        let signal = Arc::clone(&app.outbox.signal);
        let thread = thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || dispatch(&app, lanes))?;
        Ok(Some(Deliveries { thread, signal }))
    }

    /// Stops the dispatcher, waiting until `deadline` at most for the short
    /// database write it may be in; never for an attempt in flight, which
    /// stays pending and is retried after the restart.
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

fn dispatch(app: &App, mut lanes: Vec<Lane>) {
    let mut next_prune = Instant::now() + IDLE_WAKE;
    let mut wait = Duration::ZERO;
    loop {
        let inbox = app.outbox.signal.take(wait);
        if inbox.stop {
            return;
        }
        for outcome in inbox.outcomes {
            record(app, &mut lanes, outcome);
        }
        if Instant::now() >= next_prune {
            prune(app);
            next_prune = Instant::now() + IDLE_WAKE;
        }
        wait = lanes
            .iter_mut()
            .enumerate()
            .filter_map(|(index, lane)| launch_due(app, index, lane))
            .fold(
                next_prune.saturating_duration_since(Instant::now()),
                Duration::min,
            );
    }
}

/// Starts the due attempts of one lane, as far as it has free slots.
/// Returns how long until its next delivery is due, if that is known and
/// matters (a full lane is woken by an outcome instead).
fn launch_due(app: &App, index: usize, lane: &mut Lane) -> Option<Duration> {
    let free = MAX_IN_FLIGHT_PER_URL.saturating_sub(lane.in_flight.len());
    if lane.gone || free == 0 {
        return None;
    }
    let url = lane.url.as_str();
    // The rows in flight are among the soonest, so ask for them too.
    let due = match app.store.due_deliveries(url, lane.in_flight.len() + free) {
        Ok(due) => due,
        Err(err) => {
            log::error!("webhooks: reading deliveries to {} failed: {err}", lane.url);
            return Some(ERROR_PAUSE);
        }
    };
    let now = now_millis();
    for (event, due_at) in due {
        if lane.in_flight.contains(&event) {
            continue;
        }
        if due_at > now {
            return Some(Duration::from_millis((due_at - now) as u64));
        }
        let delivery = match app.store.pending_delivery(event, url) {
            Ok(Some(delivery)) => delivery,
            Ok(None) => continue,
            Err(err) => {
                log::error!("webhooks: reading a delivery to {} failed: {err}", lane.url);
                return Some(ERROR_PAUSE);
            }
        };
        let attempt = Attempt {
            lane: index,
            event,
            url: lane.url.clone(),
            delivery,
            secret: app.config.webhook_secret.clone(),
            signal: Arc::clone(&app.outbox.signal),
        };
        if let Err(err) = thread::Builder::new()
            .name("webhook-attempt".into())
            .spawn(move || attempt.run())
        {
            log::warn!("webhooks: could not start an attempt thread: {err}");
            return Some(ERROR_PAUSE);
        }
        lane.in_flight.insert(event);
    }
    None
}

/// One attempt, on its own thread: it touches no database, so nothing ever
/// waits for it; its outcome goes back to the dispatcher.
struct Attempt {
    lane: usize,
    event: i64,
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
            event: self.event,
            delivery: self.delivery,
            result,
        };
        self.signal.post(|inbox| inbox.outcomes.push(outcome));
    }
}

/// Counts, logs and records the outcome of an attempt.
fn record(app: &App, lanes: &mut [Lane], outcome: Outcome) {
    let lane = &mut lanes[outcome.lane];
    lane.in_flight.remove(&outcome.event);
    let (url, event, now) = (lane.url.as_str(), outcome.event, now_millis());
    let id = &outcome.delivery.webhook_id;
    let attempts = outcome.delivery.attempts + 1;
    let status = outcome.result.as_ref().ok().map(|answer| answer.status);
    let written = match status {
        Some(200..=299) => {
            app.metrics.delivery(DeliveryOutcome::Success);
            app.store
                .finish_delivery(event, url, DeliveryEnd::Delivered, now)
                .map(drop)
        }
        // Its deliveries were dropped when the first 410 came back.
        _ if lane.gone => {
            app.metrics.delivery(match status {
                Some(410) => DeliveryOutcome::Gone,
                _ => DeliveryOutcome::Failure,
            });
            Ok(())
        }
        Some(410) => {
            app.metrics.delivery(DeliveryOutcome::Gone);
            lane.gone = true;
            app.outbox.mark_gone(url);
            let dropped = app
                .store
                .finish_delivery(event, url, DeliveryEnd::Gone, now);
            log::warn!(
                "webhook {} answered 410 Gone to {id}: its {} other pending deliveries are \
                 dropped and it is sent nothing more until restart",
                lane.url,
                dropped.as_ref().map_or(0, |n| *n)
            );
            dropped.map(drop)
        }
        _ => {
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
            let created_at = outcome.delivery.created_at;
            match after_failure(created_at, now, attempts, retry_after, random_jitter()) {
                Next::RetryAt(at) => {
                    app.metrics.delivery(DeliveryOutcome::Failure);
                    log::warn!(
                        "webhook {} failed for {id} ({reason}), attempt {attempts}; next in {:.1} s",
                        lane.url,
                        (at - now) as f64 / 1000.0
                    );
                    app.store.retry_delivery(event, url, at)
                }
                Next::GiveUp => {
                    app.metrics.delivery(DeliveryOutcome::Expired);
                    log::warn!(
                        "webhook {} failed for {id} ({reason}); abandoned after {attempts} \
                         attempts over 24 hours",
                        lane.url
                    );
                    app.store
                        .finish_delivery(event, url, DeliveryEnd::Expired, now)
                        .map(drop)
                }
            }
        }
    };
    if let Err(err) = written {
        // The delivery stays pending as it was: it is sent again (at least once).
        log::error!(
            "webhooks: recording an attempt to {} failed: {err}",
            lane.url
        );
    }
}

/// Deletes events kept long enough, a batch per short transaction.
fn prune(app: &App) {
    let before = now_millis() - RETAIN_EVENTS.as_millis() as i64;
    loop {
        match app.store.prune_webhook_events(before, PRUNE_BATCH) {
            Ok(n) if n == PRUNE_BATCH => continue,
            Ok(_) => return,
            Err(err) => {
                log::warn!("webhooks: pruning old events failed: {err}");
                return;
            }
        }
    }
}
