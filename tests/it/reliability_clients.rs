//! Slow, idle, bursty and greedy clients: none of them delays a new client,
//! and what they cost the server comes back when they leave (threads from
//! /proc/PID/task, descriptors from /proc/PID/fd).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::procfs::{proc_stats, threads_named, wait_for_stats};
use crate::support::{Conn, TempDir, TestServer};
use serde_json::json;

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// How long a new client waits for `GET /articles` on a new connection.
fn fresh_client_wait(server: &TestServer) -> Duration {
    let started = Instant::now();
    let mut conn = Conn::open(server.addr);
    let resp = conn.try_request("GET", "/articles", &[], None);
    assert_eq!(resp.map(|r| r.status), Ok(200));
    started.elapsed()
}

/// The worst of `samples` fresh clients' waits.
fn worst_fresh_client_wait(server: &TestServer, samples: usize) -> Duration {
    (0..samples)
        .map(|_| fresh_client_wait(server))
        .max()
        .unwrap()
}

#[test]
fn a_burst_of_connections_is_served_at_once() {
    let server = TestServer::start();
    let mut conns: Vec<Conn> = (0..64).map(|_| server.connect()).collect();
    let started = Instant::now();
    for conn in &mut conns {
        conn.stream().write_all(GET_HEALTHZ).unwrap();
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

/// Why the thread-limit test cannot run here, if it cannot: it needs root
/// (to run the server as `nobody`, since root ignores RLIMIT_NPROC) and
/// util-linux's `setpriv` and `prlimit`.
fn thread_limit_unavailable() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        return Some("not root".into());
    }
    for tool in ["setpriv", "prlimit"] {
        let found = Command::new(tool).arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Some(format!("{tool} not found"));
        }
    }
    None
}

/// Threads that processes of `uid` run now: RLIMIT_NPROC counts them all.
fn threads_of_user(uid: u32) -> u64 {
    let field = |status: &str, name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("status")).ok())
        .filter(|status| field(status, "Uid:") == Some(u64::from(uid)))
        .filter_map(|status| field(&status, "Threads:"))
        .sum()
}

#[test]
fn the_server_recovers_after_running_out_of_threads() {
    if let Some(reason) = thread_limit_unavailable() {
        println!("skipped: {reason}");
        return;
    }
    let dir = TempDir::new();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let db = crate::support::database(&dir);
    // 40 threads for the server, beyond what `nobody` already runs.
    let limit = format!("--nproc={}", threads_of_user(65534) + 40);
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["prlimit", &limit, env!("CARGO_BIN_EXE_articles")])
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "4"])
        .args(["--db", &db]);
    let server = TestServer::spawn(dir, command);

    // Hold connections open until threads run out.
    let (mut held, mut dropped) = (Vec::new(), 0);
    for _ in 0..80 {
        match healthy_connection(&server, Duration::from_millis(500)) {
            Some(conn) => held.push(conn),
            None => dropped += 1,
        }
    }
    assert!(dropped > 0, "the limit of threads was never reached");
    let served_while_exhausted = held.len();
    drop(held);

    let again = served_again(&server, "/healthz", Duration::from_millis(100));
    assert!(server.log().contains("could not start a connection thread"));
    println!(
        "threads exhausted ({limit}, 40 for the server): {served_while_exhausted} connections held, \
         {dropped} dropped; served again {again:?} after they left",
    );
}

#[test]
fn the_server_recovers_after_running_out_of_descriptors() {
    let prlimit = Command::new("prlimit").arg("--version").output();
    if !prlimit.is_ok_and(|o| o.status.success()) {
        println!("skipped: prlimit not found");
        return;
    }
    // Each connection costs two descriptors (tiny_http duplicates the
    // socket), so one of two neighbouring limits leaves room for the accept
    // but not the duplicate: both ways of running out are covered.
    for limit in [48, 49] {
        exhaust_descriptors_then_recover(limit);
    }
}

fn exhaust_descriptors_then_recover(limit: u32) {
    let dir = TempDir::new();
    let db = crate::support::database(&dir);
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={limit}"))
        .arg(env!("CARGO_BIN_EXE_articles"))
        .args(["serve", "--addr", "127.0.0.1:0", "--workers", "4"])
        .args(["--db", &db]);
    let server = TestServer::spawn(dir, command);
    // Connect until three in a row wait unanswered (accept fails with
    // EMFILE and they stay in the backlog).
    let (mut held, mut unanswered) = (Vec::new(), 0);
    while unanswered < 3 && held.len() < 40 {
        match healthy_connection(&server, Duration::from_millis(300)) {
            Some(conn) => held.push(conn),
            None => unanswered += 1,
        }
    }
    assert!(
        unanswered > 0,
        "the limit of {limit} descriptors was never reached"
    );
    let served_while_exhausted = held.len();
    // Connections already open go on working, writes included.
    let body = br#"{"title":"t","content":"c"}"#;
    let json = [("Content-Type", "application/json")];
    let created = held[0].try_request("POST", "/articles", &json, Some(body));
    assert_eq!(created.map(|r| r.status), Ok(201));
    drop(held);
    let again = served_again(&server, "/articles", Duration::ZERO);
    println!(
        "descriptors exhausted (RLIMIT_NOFILE {limit}): {served_while_exhausted} connections held, \
         {unanswered} waited; served again {again:?} after they left",
    );
}

/// How long until a new connection gets 200 for `GET path` (each try waits
/// 500 ms at most for its answer, then `pause`); fails after 5 s.
fn served_again(server: &TestServer, path: &str, pause: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut conn = server.connect();
        conn.stream()
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if conn
            .try_request("GET", path, &[], None)
            .is_ok_and(|r| r.status == 200)
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never served again"
        );
        thread::sleep(pause);
    }
}

/// A new connection that answered `GET /healthz` with 200 within `wait`, or
/// none.
fn healthy_connection(server: &TestServer, wait: Duration) -> Option<Conn> {
    let mut conn = server.connect();
    conn.stream().set_read_timeout(Some(wait)).unwrap();
    conn.stream().write_all(GET_HEALTHZ).unwrap();
    match conn.try_read_response(false) {
        Ok(resp) if resp.status == 200 => Some(conn),
        _ => None,
    }
}

/// Opens `count` connections and starts a request head on each, then sends
/// one more header byte on each every `every` until `stop`.
fn slowloris(addr: std::net::SocketAddr, count: usize, every: Duration, stop: &AtomicBool) {
    let mut streams: Vec<TcpStream> = (0..count)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /articles HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    while !stop.load(Ordering::Relaxed) {
        for stream in &mut streams {
            let _ = stream.write_all(b"a");
        }
        thread::sleep(every);
    }
}

#[test]
fn idle_and_slowloris_clients_neither_delay_a_new_client_nor_leave_anything_behind() {
    const IDLE_TIMEOUT: u64 = 3;
    let server = TestServer::start_with(&["--idle-timeout", &IDLE_TIMEOUT.to_string()]);
    let pid = server.pid();
    let unloaded = worst_fresh_client_wait(&server, 5);
    let baseline = proc_stats(pid);

    let idle: Vec<Conn> = (0..300)
        .map(|_| {
            let mut conn = server.connect();
            assert_eq!(conn.request("GET", "/healthz", &[], None).status, 200);
            conn
        })
        .collect();
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let stop = &stop;
        scope.spawn(move || slowloris(server.addr, 50, Duration::from_millis(300), stop));
        thread::sleep(Duration::from_millis(500));
        let loaded = proc_stats(pid);
        let wait = worst_fresh_client_wait(&server, 10);
        assert!(wait < Duration::from_secs(1), "{wait:?}");

        // The server closes the idle connections itself; the slowloris ones
        // stay while they trickle (a residual risk, see README).
        let after_timeout = wait_for_stats(pid, Duration::from_secs(IDLE_TIMEOUT + 5), |s| {
            s.threads <= baseline.threads + 55
        });
        stop.store(true, Ordering::Relaxed);
        println!(
            "idle/slowloris: baseline {baseline:?}; with 300 idle + 50 slowloris {loaded:?}; \
             fresh client {unloaded:?} unloaded, worst {wait:?} loaded; \
             after the {IDLE_TIMEOUT} s idle timeout {after_timeout:?}"
        );
        assert!(
            after_timeout.threads <= baseline.threads + 55,
            "{after_timeout:?}"
        );
    });
    drop(idle);
    let after = wait_for_stats(pid, Duration::from_secs(5), |s| {
        s.threads <= baseline.threads + 1 && s.fds <= baseline.fds + 1
    });
    println!("idle/slowloris: after they left {after:?}");
    assert!(
        after.threads <= baseline.threads + 1,
        "{after:?} vs {baseline:?}"
    );
    assert!(after.fds <= baseline.fds + 1, "{after:?} vs {baseline:?}");
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
            let client = crate::support::sent(
                &server,
                &b"GET /articles?per_page=100 HTTP/1.1\r\nHost: t\r\n\r\n".repeat(8),
            );
            thread::sleep(Duration::from_millis(100));
            client
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let wait = worst_fresh_client_wait(&server, 5);
    println!("pipelining greedy clients: a fresh client waited at worst {wait:?}");
    assert!(wait < Duration::from_secs(1), "{wait:?}");
    drop(greedy);
}

/// A `GET` sent on a new connection, nothing read yet.
fn send_get(server: &TestServer, path: &str) -> TcpStream {
    crate::support::sent(
        server,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    )
}

/// The status of the response that `stream` receives within `wait`, if any.
fn status_within(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    crate::support::status_of(&buf[..n])
}

#[test]
fn reads_are_answered_while_every_worker_waits_on_a_slow_write() {
    let server = TestServer::start_with(&["--workers", "1"]);
    let id = server.create("read me", "while a write waits", &[])["id"].clone();
    let (mut slow_write, rest) = crate::support::half_sent_post(&server);
    thread::sleep(Duration::from_millis(200));
    // The only worker waits for the rest of that body; reads are answered by
    // their own connection threads meanwhile.
    for path in [
        format!("/articles/{id}"),
        "/articles".into(),
        "/readyz".into(),
    ] {
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

/// The server's worker threads.
fn worker_threads(server: &TestServer) -> usize {
    threads_named(server.pid(), "worker-")
}

#[test]
fn workers_beyond_the_turns_start_only_as_concurrent_writes_need_them() {
    let server = TestServer::start_with(&["--workers", "2"]);
    assert_eq!(worker_threads(&server), 2, "one worker per turn at start");

    let writers: Vec<_> = (0..24)
        .map(|n| {
            let addr = server.addr;
            thread::spawn(move || {
                let mut conn = Conn::open(addr);
                for i in 0..10 {
                    let body = json!({"title": format!("{n}-{i}"), "content": "c"});
                    assert_eq!(conn.create(&body).status, 201);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let started = worker_threads(&server);
    // 8 per turn at most (README, Limits).
    assert!(
        (3..=16).contains(&started),
        "{started} workers after 24 concurrent writers on 2 turns"
    );
    println!(
        "2 turns, 24 concurrent writers: {started} workers, {} writes in {} commits",
        server.metric("articles_db_writes_total").unwrap(),
        server.metric("articles_db_commits_total").unwrap(),
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
    let (mut slow_write, rest) = crate::support::half_sent_post(&server);
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
