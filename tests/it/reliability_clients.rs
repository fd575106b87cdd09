//! Slow, bursty and greedy clients: none of them delays a new client. (What
//! they cost the server's process, read from /proc, is in the `process`
//! binary's `resources`.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::in_process::TestServer;
use crate::support::{status_of, Conn};

#[test]
fn a_burst_of_connections_is_served_at_once() {
    let server = TestServer::start();
    let mut conns: Vec<Conn> = (0..64).map(|_| server.connect()).collect();
    let started = Instant::now();
    for conn in &mut conns {
        conn.stream()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
    }
    for (n, conn) in conns.iter_mut().enumerate() {
        let left = Duration::from_secs(3).saturating_sub(started.elapsed());
        let left = left.max(Duration::from_millis(1));
        conn.stream().set_read_timeout(Some(left)).unwrap();
        let resp = conn.try_read_response(false);
        assert_eq!(resp.map(|r| r.status), Ok(200), "connection {n} of 64");
    }
    println!(
        "burst: 64 new keep-alive connections answered in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_client_pipelining_big_responses_without_reading_holds_one_worker_at_most() {
    let server = TestServer::start_with(&[
        "--workers",
        "2",
        "--idle-timeout",
        "2",
        "--max-body",
        "2000000",
    ]);
    let content = "x".repeat(100_000);
    for n in 0..80 {
        let resp = server.post(&json!({"title": format!("big {n}"), "content": content}));
        assert_eq!(resp.status, 201);
    }
    // Three clients, each with eight pipelined requests for 8 MB each, never
    // read. The first two hold the two reads answered on connection threads
    // (`--workers` of them); the third one's requests go to the workers,
    // where it must hold one of the two, not both.
    let greedy: Vec<TcpStream> = (0..3)
        .map(|_| {
            let client =
                server.sent(&b"GET /articles?per_page=100 HTTP/1.1\r\nHost: t\r\n\r\n".repeat(8));
            thread::sleep(Duration::from_millis(100));
            client
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let wait = server.worst_fresh_client_wait(5);
    println!("pipelining greedy clients: a fresh client waited at worst {wait:?}");
    assert!(wait < Duration::from_secs(1), "{wait:?}");
    drop(greedy);
}

/// A `GET` sent on a new connection, nothing read yet.
fn send_get(server: &TestServer, path: &str) -> TcpStream {
    server.sent(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
}

/// The status of the response that `stream` receives within `wait`, if any.
fn status_within(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    status_of(&buf[..n])
}

#[test]
fn reads_are_answered_while_every_worker_waits_on_a_slow_write() {
    let server = TestServer::start_with(&["--workers", "1"]);
    let id = server.create("read me", "while a write waits", &[])["id"].clone();
    let (mut slow_write, rest) = server.half_sent_post();
    thread::sleep(Duration::from_millis(200));
    // The only worker waits for the rest of that body; reads are answered by
    // their own connection threads meanwhile, one at a time (`--workers`).
    for path in [
        format!("/articles/{id}"),
        "/articles".into(),
        "/readyz".into(),
    ] {
        // The thread that answered the read before gives that one slot back
        // just after its answer is sent: a read sent at that very moment
        // would go to the busy worker.
        thread::sleep(Duration::from_millis(100));
        let mut read = send_get(&server, &path);
        assert_eq!(
            status_within(&mut read, Duration::from_secs(2)),
            Some(200),
            "{path}"
        );
    }
    slow_write.write_all(&rest).unwrap();
    assert_eq!(
        status_within(&mut slow_write, Duration::from_secs(5)),
        Some(201)
    );
}

#[test]
fn past_64_open_connections_reads_go_to_the_workers() {
    // Answering a read deepens its connection thread's stack for good, so
    // only the first 64 connections do it (README, Limits); past that a read
    // waits for a worker like any other request.
    let server = TestServer::start_with(&["--workers", "1"]);
    let idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    let (mut slow_write, rest) = server.half_sent_post();
    thread::sleep(Duration::from_millis(300));
    let mut read = send_get(&server, "/healthz");
    assert_eq!(
        status_within(&mut read, Duration::from_millis(500)),
        None,
        "queued behind the busy worker"
    );
    slow_write.write_all(&rest).unwrap();
    assert_eq!(
        status_within(&mut slow_write, Duration::from_secs(5)),
        Some(201)
    );
    assert_eq!(status_within(&mut read, Duration::from_secs(5)), Some(200));
    drop(idle);
}
