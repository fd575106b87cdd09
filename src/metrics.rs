//! Prometheus metrics, kept in fixed tables of atomics: recording a request
//! is a handful of relaxed increments, no lock and no allocation.
//!
//! Label values come from closed sets (methods, route patterns, statuses),
//! so a client cannot grow the series count with odd requests.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Methods with a label of their own; anything else counts as `other`.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// Statuses with a label of their own; anything else counts as `other`.
const STATUSES: [u16; 24] = [
    200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 411, 412, 413, 414, 415, 417, 422, 431,
    500, 503, 505, 507, 0,
];

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len() - 1)
}

/// One route's latency histogram.
#[derive(Default)]
struct Histogram {
    /// Cumulative counts are computed when rendering; these are per bucket,
    /// the last one for observations above every bound.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

/// How a webhook delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// A 2xx answer.
    Success = 0,
    /// Anything else but a 410; it is retried.
    Failure = 1,
    /// A 410 Gone.
    Gone = 2,
    /// A failure after 24 hours of them: the delivery is abandoned.
    Expired = 3,
}

/// The `outcome` labels, indexed by `DeliveryOutcome`.
const OUTCOMES: [&str; 4] = ["success", "failure", "gone", "expired"];

/// Everything the server counts.
pub struct Metrics {
    /// The route labels, `UNMATCHED` last.
    routes: Vec<&'static str>,
    requests: Vec<AtomicU64>,
    latency: Vec<Histogram>,
    in_flight: AtomicI64,
    deliveries: [AtomicU64; OUTCOMES.len()],
    /// Change-feed streams open now.
    streams: AtomicUsize,
    /// Events written to streams, once per stream.
    events_sent: AtomicU64,
}

/// Gauges read at scrape time from elsewhere.
pub struct Snapshot {
    /// (pool name, connections in use, idle connections).
    pub pools: Vec<(&'static str, u32, u32)>,
    /// Statements that found the database busy or locked, or waited too long
    /// for a pooled connection.
    pub db_busy_total: u64,
    /// Writes, and the commits that made them durable (group commit puts
    /// several writes in one commit).
    pub db_writes_commits: (u64, u64),
    /// Pending webhook deliveries and the age in seconds of the oldest
    /// one's event; `None` when the database could not say.
    pub webhook_backlog: Option<(u64, f64)>,
}

impl Metrics {
    /// Counters for requests to these route labels (the route table's
    /// patterns), and to `UNMATCHED`.
    pub fn new(labels: &[&'static str]) -> Metrics {
        let routes: Vec<&'static str> = labels.iter().copied().chain([UNMATCHED]).collect();
        Metrics {
            requests: (0..METHODS.len() * routes.len() * STATUSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: (0..routes.len()).map(|_| Histogram::default()).collect(),
            routes,
            in_flight: AtomicI64::new(0),
            deliveries: Default::default(),
            streams: AtomicUsize::new(0),
            events_sent: AtomicU64::new(0),
        }
    }

    /// The index of a route label; anything unknown counts as `UNMATCHED`.
    fn route_index(&self, route: &str) -> usize {
        let last = self.routes.len() - 1;
        self.routes[..last]
            .iter()
            .position(|r| *r == route)
            .unwrap_or(last)
    }

    /// A request started.
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request finished: count it and its latency.
    pub fn finish(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let route = self.route_index(route);
        let cell = (method_index(method) * self.routes.len() + route) * STATUSES.len()
            + status_index(status);
        self.requests[cell].fetch_add(1, Ordering::Relaxed);

        let histogram = &self.latency[route];
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        histogram.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        histogram
            .sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    /// A change-feed stream opens, unless `most` are open already; returns
    /// whether it may.
    pub fn stream_opened(&self, most: usize) -> bool {
        self.streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < most).then_some(open + 1)
            })
            .is_ok()
    }

    /// A change-feed stream closed.
    pub fn stream_closed(&self) {
        self.streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// An event was written to a stream.
    pub fn event_sent(&self) {
        self.events_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A webhook delivery attempt ended.
    pub fn delivery(&self, outcome: DeliveryOutcome) {
        self.deliveries[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests being served now.
    fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The text exposition format 0.0.4.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        let routes = &self.routes;

        out.push_str("# HELP articles_http_requests_total HTTP requests by method, route pattern and status.\n");
        out.push_str("# TYPE articles_http_requests_total counter\n");
        for (m, method) in METHODS.iter().enumerate() {
            for (r, route) in routes.iter().enumerate() {
                for (s, status) in STATUSES.iter().enumerate() {
                    let cell = (m * routes.len() + r) * STATUSES.len() + s;
                    let count = self.requests[cell].load(Ordering::Relaxed);
                    if count > 0 {
                        let status = match status {
                            0 => "other".to_owned(),
                            s => s.to_string(),
                        };
                        let _ = writeln!(
                            out,
                            "articles_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                        );
                    }
                }
            }
        }

        out.push_str("# HELP articles_http_request_duration_seconds Time from a worker or connection thread taking up a request to its response being ready to write.\n");
        out.push_str("# TYPE articles_http_request_duration_seconds histogram\n");
        for (route, histogram) in routes.iter().zip(&self.latency) {
            let mut cumulative = 0;
            for (bound, bucket) in BUCKETS.iter().zip(&histogram.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "articles_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            cumulative += histogram.buckets[BUCKETS.len()].load(Ordering::Relaxed);
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "articles_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {cumulative}\n\
                 articles_http_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\n\
                 articles_http_request_duration_seconds_count{{route=\"{route}\"}} {cumulative}"
            );
        }

        let _ = writeln!(
            out,
            "# HELP articles_http_requests_in_flight Requests being served.\n\
             # TYPE articles_http_requests_in_flight gauge\n\
             articles_http_requests_in_flight {}",
            self.in_flight()
        );
        out.push_str(
            "# HELP articles_db_pool_connections Pooled database connections by pool and state.\n",
        );
        out.push_str("# TYPE articles_db_pool_connections gauge\n");
        for (pool, in_use, idle) in &snapshot.pools {
            let _ = writeln!(
                out,
                "articles_db_pool_connections{{pool=\"{pool}\",state=\"in_use\"}} {in_use}\n\
                 articles_db_pool_connections{{pool=\"{pool}\",state=\"idle\"}} {idle}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP articles_db_busy_errors_total Database operations that found it busy or locked past the timeout.\n\
             # TYPE articles_db_busy_errors_total counter\n\
             articles_db_busy_errors_total {}\n\
             # HELP articles_db_writes_total Write operations made durable or refused.\n\
             # TYPE articles_db_writes_total counter\n\
             articles_db_writes_total {}\n\
             # HELP articles_db_commits_total Write transactions committed; each holds one or more writes.\n\
             # TYPE articles_db_commits_total counter\n\
             articles_db_commits_total {}\n\
             # HELP articles_build_info The running version.\n\
             # TYPE articles_build_info gauge\n\
             articles_build_info{{version=\"{}\"}} 1",
            snapshot.db_busy_total,
            snapshot.db_writes_commits.0,
            snapshot.db_writes_commits.1,
            env!("CARGO_PKG_VERSION")
        );
        self.render_webhooks(snapshot, &mut out);
        let _ = writeln!(
            out,
            "# HELP events_streams_open Change-feed streams open now.\n\
             # TYPE events_streams_open gauge\n\
             events_streams_open {}\n\
             # HELP events_sent_total Events written to change-feed streams, once per stream.\n\
             # TYPE events_sent_total counter\n\
             events_sent_total {}",
            self.streams.load(Ordering::Relaxed),
            self.events_sent.load(Ordering::Relaxed)
        );
        out
    }

    /// The webhook series. Named as the HTTP contract names them, without
    /// the `articles_` prefix.
    fn render_webhooks(&self, snapshot: &Snapshot, out: &mut String) {
        out.push_str(
            "# HELP webhook_deliveries_total Webhook delivery attempts by outcome.\n\
             # TYPE webhook_deliveries_total counter\n",
        );
        for (outcome, count) in OUTCOMES.iter().zip(&self.deliveries) {
            let _ = writeln!(
                out,
                "webhook_deliveries_total{{outcome=\"{outcome}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
        if let Some((pending, oldest)) = snapshot.webhook_backlog {
            let _ = writeln!(
                out,
                "# HELP webhook_deliveries_pending (event, URL) pairs not yet delivered, dropped or abandoned.\n\
                 # TYPE webhook_deliveries_pending gauge\n\
                 webhook_deliveries_pending {pending}\n\
                 # HELP webhook_oldest_pending_age_seconds Age of the oldest event with a pending delivery; 0 when none.\n\
                 # TYPE webhook_oldest_pending_age_seconds gauge\n\
                 webhook_oldest_pending_age_seconds {oldest:.3}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_delivery_outcomes() {
        let metrics = Metrics::new(&["/articles", "/articles/{id}"]);
        metrics.delivery(DeliveryOutcome::Failure);
        metrics.delivery(DeliveryOutcome::Failure);
        metrics.delivery(DeliveryOutcome::Success);
        let text = metrics.render(&snapshot());
        assert!(text.contains("webhook_deliveries_total{outcome=\"failure\"} 2\n"));
        assert!(text.contains("webhook_deliveries_total{outcome=\"success\"} 1\n"));
        assert!(text.contains("webhook_deliveries_total{outcome=\"gone\"} 0\n"));
        assert!(text.contains("webhook_deliveries_total{outcome=\"expired\"} 0\n"));
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            pools: vec![("read", 1, 3)],
            db_busy_total: 2,
            db_writes_commits: (5, 3),
            webhook_backlog: Some((5, 12.5)),
        }
    }

    #[test]
    fn counts_requests_by_closed_label_sets() {
        let metrics = Metrics::new(&["/articles", "/articles/{id}"]);
        metrics.start();
        metrics.finish("GET", "/articles/{id}", 200, Duration::from_micros(300));
        metrics.start();
        metrics.finish("BREW", "/nowhere", 418, Duration::from_secs(9));
        let text = metrics.render(&snapshot());
        assert!(text.contains(
            "articles_http_requests_total{method=\"GET\",route=\"/articles/{id}\",status=\"200\"} 1"
        ));
        assert!(text.contains(
            "articles_http_requests_total{method=\"other\",route=\"unmatched\",status=\"other\"} 1"
        ));
        assert!(!text.contains("BREW") && !text.contains("/nowhere"));
        assert!(text.contains("articles_http_requests_in_flight 0"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let metrics = Metrics::new(&["/articles", "/articles/{id}"]);
        for micros in [100, 300, 700, 7_000_000] {
            metrics.start();
            metrics.finish("GET", "/articles", 200, Duration::from_micros(micros));
        }
        let text = metrics.render(&snapshot());
        let bucket = |le: &str| {
            let prefix = format!(
                "articles_http_request_duration_seconds_bucket{{route=\"/articles\",le=\"{le}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap()
                .to_owned()
        };
        assert_eq!(bucket("0.00025"), "1");
        assert_eq!(bucket("0.0005"), "2");
        assert_eq!(bucket("0.001"), "3");
        assert_eq!(bucket("5"), "3");
        assert_eq!(bucket("+Inf"), "4");
        assert!(
            text.contains("articles_http_request_duration_seconds_count{route=\"/articles\"} 4")
        );
    }

    #[test]
    fn counts_streams_up_to_a_cap_and_events_sent() {
        let metrics = Metrics::new(&[]);
        assert!(metrics.stream_opened(2) && metrics.stream_opened(2));
        assert!(!metrics.stream_opened(2), "a third over the cap");
        metrics.stream_closed();
        metrics.event_sent();
        let text = metrics.render(&snapshot());
        assert!(text.contains("events_streams_open 1\n"));
        assert!(text.contains("events_sent_total 1\n"));
    }

    #[test]
    fn renders_gauges_and_build_info() {
        let text = Metrics::new(&["/articles", "/articles/{id}"]).render(&snapshot());
        assert!(text.contains("articles_db_pool_connections{pool=\"read\",state=\"in_use\"} 1"));
        assert!(text.contains("articles_db_pool_connections{pool=\"read\",state=\"idle\"} 3"));
        assert!(text.contains("articles_db_busy_errors_total 2"));
        assert!(text.contains("webhook_deliveries_pending 5\n"));
        assert!(text.contains("webhook_oldest_pending_age_seconds 12.500\n"));
        assert!(text.contains(&format!(
            "articles_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
