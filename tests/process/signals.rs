//! SIGTERM and SIGINT: the graceful shutdown they start, alone and under
//! load, and what it does to requests in flight, queued or arriving late,
//! to a webhook attempt in flight and to change-feed streams. These signal
//! the server's process.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::spawned::TestServer;
use crate::support::database::postgres;
use crate::support::ledger;
use crate::support::load::{checked_stats, readers, writers, Reader, OTHERS};
use crate::support::receiver::{Answer, Receiver, WAIT};
use crate::support::rng::{self, Rng};
use crate::support::sse::Stream;
use crate::support::wire::WireError;
use crate::support::Conn;

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    let mut server = TestServer::start_with(&["--workers", "1"]);
    let (mut in_flight, rest) = server.half_sent_post();
    std::thread::sleep(Duration::from_millis(200));
    // Queued behind the busy worker before the signal (a write: only
    // workers take those): must still be served, and see the shutdown.
    let mut queued = server.sent(b"DELETE /articles/999999 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));

    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "new connections are refused at once"
    );
    in_flight.write_all(&rest).unwrap();

    let answer = read_all(&mut in_flight);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let article: Value = serde_json::from_str(body).expect("a complete body");
    let deleted = read_all(&mut queued);
    assert!(deleted.starts_with("HTTP/1.1 404"), "{deleted}");
    assert!(deleted.contains("\r\nConnection: close\r\n"), "{deleted}");

    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
    if !postgres() {
        assert!(
            !server.dir.path().join("test.db-wal").exists(),
            "WAL checkpointed and removed"
        );
    }
    let log = server.log();
    assert!(log.contains("SIGTERM received"), "{log}");

    let again = server.restart_with("TERM", &[]);
    assert_eq!(
        again.get(&format!("/articles/{}", article["id"])).json(),
        article,
        "acknowledged write kept"
    );
}

#[test]
fn sigterm_lets_a_read_still_being_sent_finish() {
    let mut server = TestServer::start_with(&["--max-body", "2000000"]);
    let content = "x".repeat(100_000);
    for n in 0..100 {
        let resp = server.post(&json!({"title": format!("big {n}"), "content": content}));
        assert_eq!(resp.status, 201);
    }
    // About 10 MB, more than the sockets hold: the server is still writing
    // it when the signal comes, and the client reads it only afterwards.
    let mut reader = server.sent(b"GET /articles?per_page=100 HTTP/1.1\r\nHost: t\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));

    let answer = read_all(&mut reader);
    let (head, body) = answer.split_once("\r\n\r\n").expect("a whole head");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let page: Value = serde_json::from_str(body).expect("the whole body");
    assert_eq!(page.as_array().map(Vec::len), Some(100));
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_stops_an_idle_server_at_once() {
    let mut server = TestServer::start();
    let _idle = server.connect();
    let started = Instant::now();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn the_grace_period_is_bounded() {
    let mut server = TestServer::start_with(&["--workers", "1", "--shutdown-timeout", "1"]);
    let (_stalled, _rest) = server.half_sent_post();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(server
        .log()
        .contains("still running after the grace period"));
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
    let (mut in_flight, rest) = server.half_sent_post();
    thread::sleep(Duration::from_millis(200));

    server.signal("TERM");
    thread::sleep(Duration::from_millis(200));
    // Arrives after the signal, on a connection opened before it, while the
    // only worker is still busy.
    let late = b"GET /articles HTTP/1.1\r\nHost: t\r\n\r\n";
    keep_alive.stream().write_all(late).unwrap();
    thread::sleep(Duration::from_millis(100));
    in_flight.write_all(&rest).unwrap();

    let answer = read_all(&mut in_flight);
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

#[test]
fn sigterm_abandons_an_attempt_in_flight_and_it_is_retried_after_restart() {
    let receiver = Receiver::start(|n| match n {
        0 => Answer::status(200).after(Duration::from_secs(20)),
        _ => Answer::status(200),
    });
    let args = ["--webhook", &receiver.url()];
    let mut server = TestServer::start_with(&args);
    server.create("t", "c", &[]);
    let first = receiver.wait_for(1, WAIT)[0].clone();

    let stopping = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(5)).expect("exits");
    assert_eq!(status.code(), Some(0));
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "{:?}",
        stopping.elapsed()
    );
    if !postgres() {
        assert!(
            !server.dir.path().join("test.db-wal").exists(),
            "WAL checkpointed and removed"
        );
    }

    let server = server.restart_with("TERM", &args);
    let again = &receiver.wait_for(2, WAIT)[1];
    assert_eq!(again.id(), first.id());
    assert_eq!(again.body, first.body);
    server.await_metric("webhook_deliveries_pending", 0.0);
}

/// Everything `stream` receives until it closes, as text.
pub fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn sigterm_ends_every_stream_cleanly_and_a_restarted_server_resumes_them() {
    let mut server = TestServer::start();
    server.create("one", "c", &[]);
    server.create("two", "c", &[]);
    let mut streams: Vec<Stream> = ["/events", "/events?after=0", "/events?tag=none"]
        .iter()
        .map(|path| Stream::open(server.addr, path, &[]))
        .collect();
    assert!(streams.iter().all(|s| s.head.status == 200));
    let replayed: Vec<i64> = (0..2)
        .map(|_| streams[1].event().unwrap().seq().unwrap())
        .collect();
    assert_eq!(replayed, [1, 2]);

    let signalled = Instant::now();
    server.signal("TERM");
    for stream in &mut streams {
        // The rest of the stream, to its end: no event, a clean close.
        while let Some(frame) = stream.frame() {
            assert!(frame.data.is_none(), "{frame:?}");
        }
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0));
    let stopped = signalled.elapsed();
    assert!(stopped < Duration::from_secs(5), "{stopped:?} to stop");

    // The client reconnects to a new server on the same database and
    // resumes where it was: nothing missed, nothing twice.
    let server = server.restart_with("TERM", &[]);
    server.create("three", "c", &[]);
    let mut resumed = Stream::open(server.addr, "/events", &[("Last-Event-ID", "2")]);
    let event = resumed.event().unwrap();
    assert_eq!(event.seq(), Some(3));
    assert_eq!(event.json()["data"]["title"], "three");
}
