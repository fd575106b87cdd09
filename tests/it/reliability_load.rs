//! Concurrency and graceful shutdown under load: many writers and readers
//! on every endpoint, every response checked byte by byte, totals and
//! acknowledged states checked at the end; SIGTERM in the middle of it.
//!
//! `RELIABILITY_SCALE=10` runs ten times longer; `RELIABILITY_SEED`
//! replays a run.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::ledger::{self, Writer};
use crate::support::rng::{self, Rng};
use crate::support::wire::WireError;
use crate::support::{bearer, Conn, Resp, TestServer};

/// The contested article, made outside the ledgers: id 1.
const OTHERS: &[i64] = &[1];

/// What the readers saw.
#[derive(Debug, Default)]
struct ReadStats {
    sent: u64,
    unavailable: u64,
    not_modified: u64,
    precondition_failed: u64,
    problems: Vec<String>,
}

impl ReadStats {
    fn merge(&mut self, other: ReadStats) {
        self.sent += other.sent;
        self.unavailable += other.unavailable;
        self.not_modified += other.not_modified;
        self.precondition_failed += other.precondition_failed;
        self.problems.extend(other.problems);
    }
}

/// One reader's view of the server: a connection, a token for `/me`, and the
/// largest article id worth asking for.
struct Reader {
    rng: Rng,
    token: String,
    username: String,
    stats: ReadStats,
}

impl Reader {
    /// Sends one random read (or a contested conditional write) and checks
    /// the answer.
    fn step(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        self.stats.sent += 1;
        match self.rng.below(10) {
            0..=3 => self.list(conn),
            4..=6 => self.show(conn),
            7 => self.contend(conn),
            8 => {
                let auth = bearer(&self.token);
                let resp = conn.try_request("GET", "/me", &[("Authorization", &auth)], None)?;
                self.expect(&resp, &[200], "/me");
                if resp.status == 200 && resp.json()["username"] != self.username.as_str() {
                    self.stats.problems.push(format!("/me: {}", resp.text()));
                }
                Ok(())
            }
            _ => {
                let path = *self
                    .rng
                    .pick(&["/healthz", "/readyz", "/metrics", "/openapi.json"]);
                let method = *self.rng.pick(&["GET", "HEAD", "OPTIONS"]);
                let resp = conn.try_request(method, path, &[], None)?;
                let ok: &[u16] = if method == "OPTIONS" { &[204] } else { &[200] };
                self.expect(&resp, ok, path);
                Ok(())
            }
        }
    }

    /// A listing with random filters: 200, at most `per_page` articles,
    /// `X-Total-Count` and `Link`.
    fn list(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let mut query = vec![format!("per_page={}", self.rng.between(1, 100))];
        query.push(format!("page={}", self.rng.between(1, 4)));
        if self.rng.chance(30) {
            query.push(format!(
                "tag={}",
                self.rng.pick(&["alpha", "rust", "sql", "none"])
            ));
        }
        if self.rng.chance(20) {
            query.push(format!(
                "author={}",
                self.rng.pick(&[self.username.as_str(), "nobody"])
            ));
        }
        if self.rng.chance(30) {
            let q = *self
                .rng
                .pick(&["lorem", "ipsum+dolor", "w1", "%22x%22+OR+*", "NEAR(a)"]);
            query.push(format!("q={q}"));
        }
        if self.rng.chance(40) {
            let sort = *self
                .rng
                .pick(&["created_at", "-updated_at", "title", "-title"]);
            query.push(format!("sort={sort}"));
        }
        let path = format!("/articles?{}", query.join("&"));
        let resp = conn.try_request("GET", &path, &[], None)?;
        if self.expect(&resp, &[200], &path) && resp.status == 200 {
            let per_page: usize = query[0][9..].parse().unwrap();
            let items = resp.json().as_array().map_or(usize::MAX, Vec::len);
            let total = resp
                .header("X-Total-Count")
                .and_then(|t| t.parse::<u64>().ok());
            if items > per_page || total.is_none() || resp.header("Link").is_none() {
                self.stats
                    .problems
                    .push(format!("{path}: {:?}", resp.headers));
            }
        }
        Ok(())
    }

    /// GET or HEAD of a random article, then a conditional GET with its ETag.
    fn show(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let path = format!("/articles/{}", self.rng.between(1, 400));
        let method = if self.rng.chance(20) { "HEAD" } else { "GET" };
        let resp = conn.try_request(method, &path, &[], None)?;
        if !self.expect(&resp, &[200, 404], &path) || resp.status != 200 {
            return Ok(());
        }
        let Some(etag) = resp.header("ETag").map(str::to_owned) else {
            self.stats.problems.push(format!("{path}: no ETag"));
            return Ok(());
        };
        self.stats.sent += 1;
        let again = conn.try_request("GET", &path, &[("If-None-Match", &etag)], None)?;
        // 200: it changed meanwhile; 404: it was deleted meanwhile.
        if self.expect(&again, &[304, 200, 404], &path) && again.status == 304 {
            self.stats.not_modified += 1;
        }
        Ok(())
    }

    /// Optimistic concurrency on the one article every reader fights over:
    /// read its ETag, PATCH with `If-Match`: 200 or 412, nothing else.
    fn contend(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let resp = conn.try_request("GET", "/articles/1", &[], None)?;
        if !self.expect(&resp, &[200], "/articles/1") || resp.status != 200 {
            return Ok(());
        }
        let etag = resp.header("ETag").unwrap_or("\"none\"").to_owned();
        let body = format!("{{\"content\": \"won by {}\"}}", self.rng.next_u64());
        let headers = [("Content-Type", "application/json"), ("If-Match", &etag)];
        self.stats.sent += 1;
        let resp = conn.try_request("PATCH", "/articles/1", &headers, Some(body.as_bytes()))?;
        if self.expect(&resp, &[200, 412], "PATCH /articles/1") && resp.status == 412 {
            self.stats.precondition_failed += 1;
        }
        Ok(())
    }

    /// Whether `resp` has one of the `ok` statuses; 503 with `Retry-After`
    /// is counted and tolerated, anything else recorded as a problem.
    fn expect(&mut self, resp: &Resp, ok: &[u16], what: &str) -> bool {
        if ok.contains(&resp.status) {
            return true;
        }
        if resp.status == 503 && resp.header("Retry-After").is_some() {
            self.stats.unavailable += 1;
        } else {
            let text = resp.text();
            let text = &text[..text.len().min(300)];
            self.stats
                .problems
                .push(format!("{what}: {} {text}", resp.status));
        }
        false
    }
}

/// Makes `count` readers, each with its own user and token.
fn readers(server: &TestServer, seed: u64, count: u64) -> Vec<Reader> {
    (0..count)
        .map(|n| {
            let username = format!("reader{n}");
            Reader {
                rng: Rng::new(seed.wrapping_mul(31).wrapping_add(n)),
                token: server.add_user(&username),
                username,
                stats: ReadStats::default(),
            }
        })
        .collect()
}

/// Writers, a third of them with a token.
fn writers(server: &TestServer, seed: u64, count: u64) -> Vec<Writer> {
    (0..count)
        .map(|n| {
            let token = (n % 3 == 2).then(|| server.add_user(&format!("writer{n}")));
            Writer::new(&format!("w{n}"), seed.wrapping_add(n), token)
        })
        .collect()
}

/// Runs every writer and reader on its own connection for `duration`;
/// returns the connections that failed (none should).
fn run_for(
    addr: SocketAddr,
    writers: &mut [Writer],
    readers: &mut [Reader],
    duration: Duration,
) -> Vec<String> {
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let stop = &stop;
        let mut handles = Vec::new();
        for writer in writers.iter_mut() {
            handles.push(scope.spawn(move || {
                let mut conn = Conn::open(addr);
                while !stop.load(Ordering::Relaxed) {
                    if let Err(err) = writer.step(&mut conn) {
                        return Err(format!("{}: {err:?}", writer.name));
                    }
                }
                Ok::<(), String>(())
            }));
        }
        for reader in readers.iter_mut() {
            handles.push(scope.spawn(move || {
                let mut conn = Conn::open(addr);
                while !stop.load(Ordering::Relaxed) {
                    reader
                        .step(&mut conn)
                        .map_err(|e| format!("reader: {e:?}"))?;
                }
                Ok(())
            }));
        }
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let results = handles.into_iter().map(|h| h.join().unwrap());
        results.filter_map(Result::err).collect()
    })
}

/// The readers' stats, merged, once every client is checked to have seen
/// no problem.
fn checked_stats(readers: Vec<Reader>, writers: &[Writer]) -> ReadStats {
    let mut reads = ReadStats::default();
    for reader in readers {
        reads.merge(reader.stats);
    }
    assert!(reads.problems.is_empty(), "{:#?}", reads.problems);
    for writer in writers {
        let problems = &writer.stats.problems;
        assert!(problems.is_empty(), "{}: {problems:#?}", writer.name);
    }
    reads
}

#[test]
fn mixed_load_answers_every_request_well_formed_and_totals_add_up() {
    let seed = rng::seed("mixed load");
    let duration = Duration::from_secs(4 * rng::scale());
    // Fewer workers and pooled readers than clients: requests queue.
    let server = TestServer::start_with(&["--workers", "3", "--pool-size", "2"]);
    server.create("contested", "every reader patches this one", &[]);
    let mut writers = writers(&server, seed, 6);
    let mut readers = readers(&server, seed, 8);

    let started = Instant::now();
    let failures = run_for(server.addr, &mut writers, &mut readers, duration);
    let elapsed = started.elapsed();
    assert!(failures.is_empty(), "connections failed: {failures:?}");
    let reads = checked_stats(readers, &writers);
    let creates: u64 = writers.iter().map(|w| w.stats.creates).sum();
    let deletes: u64 = writers.iter().map(|w| w.stats.deletes).sum();
    assert_eq!(
        server.total().parse::<u64>().unwrap(),
        1 + creates - deletes,
        "X-Total-Count"
    );
    let verdict = ledger::verify(server.addr, &mut writers, OTHERS);
    assert!(verdict.problems.is_empty(), "{:#?}", verdict.problems);

    let written: u64 = writers.iter().map(|w| w.stats.sent).sum();
    let unavailable: u64 =
        reads.unavailable + writers.iter().map(|w| w.stats.unavailable).sum::<u64>();
    let total = written + reads.sent;
    println!(
        "mixed load: {total} requests ({written} writes, {} reads) in {elapsed:.1?} \
         ({:.0}/s) by 14 clients; {creates} created, {deletes} deleted; \
         {} x 304, {} x 412 on the contested article, {unavailable} x 503, 0 other 5xx; \
         {} acknowledged states exact",
        reads.sent,
        total as f64 / elapsed.as_secs_f64(),
        reads.not_modified,
        reads.precondition_failed,
        verdict.checked,
    );
}

/// Keeps a reader going until its server stops: reconnects after a clean
/// close, stops when connections are refused. Returns answers received.
fn read_until_refused(reader: &mut Reader, addr: SocketAddr) -> u64 {
    let mut answered = 0;
    while let Ok(mut conn) = Conn::try_open(addr) {
        loop {
            match reader.step(&mut conn) {
                Ok(()) => answered += 1,
                Err(WireError::Closed(_)) => break,
                Err(WireError::Broken(message)) => {
                    reader.stats.problems.push(format!("cut short: {message}"));
                    break;
                }
            }
        }
    }
    answered
}

#[test]
fn sigterm_under_load_completes_or_closes_every_exchange_and_loses_nothing() {
    let seed = rng::seed("sigterm under load");
    let mut rng = Rng::new(seed);
    let mut server = TestServer::start_with(&["--workers", "4"]);
    server.create("contested", "every reader patches this one", &[]);
    let mut writers = writers(&server, seed, 8);
    let mut readers = readers(&server, seed, 6);

    let signal_after = Duration::from_millis(rng.between(300, 900) * rng::scale());
    let mut signalled = Instant::now();
    let mut answered_reads = 0;
    thread::scope(|scope| {
        let addr = server.addr;
        let mut handles = Vec::new();
        for writer in writers.iter_mut() {
            scope.spawn(move || {
                let mut conn = Conn::open(addr);
                // A writer stops at its first unanswered write, so that its
                // ledger has exactly one write that may or may not apply.
                let ended = loop {
                    if let Err(err) = writer.step(&mut conn) {
                        break err;
                    }
                };
                if let WireError::Broken(message) = ended {
                    writer.stats.problems.push(format!("cut short: {message}"));
                }
            });
        }
        for reader in readers.iter_mut() {
            handles.push(scope.spawn(move || read_until_refused(reader, addr)));
        }
        thread::sleep(signal_after);
        server.signal("TERM");
        signalled = Instant::now();
        let answered: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        // Every reader was served: none waited behind the others.
        assert!(
            answered.iter().all(|n| *n > 0),
            "answers per reader: {answered:?}"
        );
        answered_reads = answered.iter().sum::<u64>();
    });
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits");
    let stopped_in = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", server.log());

    let reads = checked_stats(readers, &writers);
    let server = server.restart_with("KILL", &[]);
    let verdict = ledger::verify(server.addr, &mut writers, OTHERS);
    assert_eq!(verdict.lost, 0, "{:#?}", verdict.problems);
    assert!(verdict.problems.is_empty(), "{:#?}", verdict.problems);

    let written: u64 = writers.iter().map(|w| w.stats.sent).sum();
    let acknowledged: u64 = writers.iter().map(|w| w.stats.acknowledged).sum();
    let unavailable: u64 =
        reads.unavailable + writers.iter().map(|w| w.stats.unavailable).sum::<u64>();
    println!(
        "sigterm: signal after {signal_after:?} to 14 clients; exit 0 within {stopped_in:.1?}; \
         {written} writes sent, {acknowledged} acknowledged, 0 lost, {} unanswered had applied; \
         {answered_reads} reads answered, {unavailable} x 503, 0 cut short",
        verdict.applied_in_flight,
    );
}

#[test]
fn a_request_arriving_during_shutdown_is_answered_503_and_its_connection_closed() {
    let mut server = TestServer::start_with(&["--workers", "1"]);
    let mut keep_alive = server.connect();
    assert_eq!(keep_alive.request("GET", "/healthz", &[], None).status, 200);
    let (mut in_flight, rest) = crate::support::half_sent_post(&server);
    thread::sleep(Duration::from_millis(200));

    server.signal("TERM");
    thread::sleep(Duration::from_millis(200));
    // Arrives after the signal, on a connection opened before it, while the
    // only worker is still busy.
    let late = b"GET /articles HTTP/1.1\r\nHost: t\r\n\r\n";
    keep_alive.stream().write_all(late).unwrap();
    thread::sleep(Duration::from_millis(100));
    in_flight.write_all(&rest).unwrap();

    let answer = crate::support::read_all(&mut in_flight);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.contains("\r\nConnection: close\r\n"), "{answer}");
    let refused = keep_alive
        .try_read_response(false)
        .expect("an answer, not a close");
    refused.problem(503);
    assert_eq!(refused.header("Retry-After"), Some("1"));
    assert_eq!(refused.header("Connection"), Some("close"));
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}
