//! What the server's process holds, read from /proc (threads, descriptors,
//! resident memory, its environment), under limits set on that process
//! (RLIMIT_NPROC, RLIMIT_NOFILE), and counters the server keeps for its
//! whole process: none of these can be told apart for one server among
//! others in one process.
//!
//! Bounded memory: many distinct request ids, query strings, paths,
//! methods, connections and invalid tokens do not grow the server's
//! resident memory (VmRSS from /proc/PID/status) without bound;
//! `RELIABILITY_SCALE=10` sends ten times as many requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::procfs::{proc_stats, threads_named, wait_for_stats};
use crate::spawned::TestServer;
use crate::support::database::{postgres, TempDir};
use crate::support::rng::{self, Rng};
use crate::support::server::server_args;
use crate::support::{status_of, Conn};

const GET_HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

/// Client threads sending at once.
const CLIENTS: u64 = 4;

/// One request no earlier one resembles: its id, query, path, method or
/// token is new. Returns the status.
fn distinct_request(conn: &mut Conn, rng: &mut Rng, n: u64) -> u16 {
    let id = format!("req-{n}-{}", rng.next_u64());
    let word = format!("w{:x}", rng.next_u64());
    let get = "GET".to_owned();
    let (method, path, token): (String, String, Option<String>) = match n % 6 {
        0 => (
            get,
            format!("/articles?q={word}&tag={word}&page={}", 1 + n % 50),
            None,
        ),
        1 => (
            get,
            format!(
                "/articles?author={word}&sort=-title&per_page={}&{word}=x",
                1 + n % 100
            ),
            None,
        ),
        2 => (get, format!("/articles/{}", rng.next_u64() >> 2), None),
        3 => (get, format!("/{word}/{id}"), None),
        4 => (
            get,
            "/me".to_owned(),
            Some(format!("Bearer art_{word}{id}")),
        ),
        _ => (
            "M".repeat(1 + (n % 40) as usize),
            format!("/articles?{word}"),
            None,
        ),
    };
    let mut headers = vec![("X-Request-Id", id.as_str())];
    if let Some(token) = &token {
        headers.push(("Authorization", token.as_str()));
    }
    conn.try_request(&method, &path, &headers, None)
        .map(|r| r.status)
        .unwrap_or_else(|e| panic!("{method} {path}: {e:?}"))
}

/// Sends `count` distinct requests from `CLIENTS` threads; every tenth
/// request opens a new connection. Returns how many got a 5xx.
fn send_distinct(server: &TestServer, seed: u64, count: u64) -> u64 {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                scope.spawn(move || {
                    let mut rng = Rng::new(seed.wrapping_add(c));
                    let mut conn = server.connect();
                    let mut errors = 0;
                    for n in (c..count).step_by(CLIENTS as usize) {
                        if n % 10 == 0 {
                            conn = server.connect();
                        }
                        if distinct_request(&mut conn, &mut rng, n) >= 500 {
                            errors += 1;
                        }
                    }
                    errors
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    })
}

#[test]
fn distinct_ids_queries_paths_and_tokens_do_not_grow_memory() {
    let seed = rng::seed("memory");
    let count = 20_000 * rng::scale();
    let server = TestServer::start_with(&["--workers", "4"]);
    for n in 0..50 {
        server.create(&format!("article {n}"), "some words to search", &["t"]);
    }
    // Warm up: caches, pools, arenas and statement caches reach their size.
    assert_eq!(send_distinct(&server, seed, 4_000), 0);
    let before = proc_stats(server.pid());
    let started = std::time::Instant::now();
    assert_eq!(send_distinct(&server, seed ^ 1, count), 0);
    let took = started.elapsed();
    let after = proc_stats(server.pid());
    let grown = after.rss_kib as i64 - before.rss_kib as i64;
    println!(
        "memory: {count} distinct requests in {took:.1?} ({} new connections); \
         VmRSS {} KiB before, {} KiB after ({grown:+} KiB); threads {} -> {}",
        count / 10,
        before.rss_kib,
        after.rss_kib,
        before.threads,
        after.threads
    );
    // Generous: allocator noise, not growth per request (that would be
    // over 20 MB at a kilobyte a request).
    assert!(grown < 4 * 1024, "VmRSS grew by {grown} KiB");
}

/// The server restarts itself once with glibc's per-thread cache of freed
/// blocks cut to one block per size (see `limit_thread_caches` in main.rs),
/// under the same process id.
#[test]
#[cfg_attr(
    not(all(target_os = "linux", target_env = "gnu")),
    ignore = "glibc only: the tcache tunable is glibc's"
)]
fn the_server_runs_with_small_thread_caches() {
    let environ = |server: &TestServer| {
        std::fs::read(format!("/proc/{}/environ", server.pid()))
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let server = TestServer::start();
    assert_eq!(server.request("GET", "/healthz", &[], None).status, 200);
    let env = environ(&server);
    assert!(
        env.split('\0')
            .any(|var| var == "GLIBC_TUNABLES=glibc.malloc.tcache_count=1"),
        "{env:?}"
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
    // Every machine of this project runs its tests as root with util-linux;
    // elsewhere this fails with the reason rather than pass untested.
    if let Some(reason) = thread_limit_unavailable() {
        panic!("cannot run here: {reason} (needs root, setpriv and prlimit)");
    }
    let dir = TempDir::new();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let db = dir.database();
    // 40 threads for the server, beyond what `nobody` already runs.
    let limit = format!("--nproc={}", threads_of_user(65534) + 40);
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["prlimit", &limit, env!("CARGO_BIN_EXE_articles")])
        .args(server_args(&db, &[]));
    let server = TestServer::spawn(dir, &db, command);

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
    assert!(
        prlimit.is_ok_and(|o| o.status.success()),
        "cannot run here: needs util-linux's prlimit"
    );
    // Each connection costs two descriptors (tiny_http duplicates the
    // socket), so one of two neighbouring limits leaves room for the accept
    // but not the duplicate: both ways of running out are covered.
    for limit in [48, 49] {
        exhaust_descriptors_then_recover(limit);
    }
}

fn exhaust_descriptors_then_recover(limit: u32) {
    let dir = TempDir::new();
    let db = dir.database();
    let mut command = Command::new("prlimit");
    command
        .arg(format!("--nofile={limit}"))
        .arg(env!("CARGO_BIN_EXE_articles"))
        .args(server_args(&db, &[]));
    let server = TestServer::spawn(dir, &db, command);
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

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn idle_and_slowloris_clients_neither_delay_a_new_client_nor_leave_anything_behind() {
    const IDLE_TIMEOUT: u64 = 3;
    let server = TestServer::start_with(&["--idle-timeout", &IDLE_TIMEOUT.to_string()]);
    let pid = server.pid();
    let unloaded = server.worst_fresh_client_wait(5);
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
        // Stops them however this closure ends: the scope waits for them,
        // so a failed assertion would otherwise wait forever.
        let slowloris_running = StopOnDrop(stop);
        thread::sleep(Duration::from_millis(500));
        let loaded = proc_stats(pid);
        let wait = server.worst_fresh_client_wait(10);
        assert!(wait < Duration::from_secs(1), "{wait:?}");

        // The server closes the idle connections itself; the slowloris ones
        // stay while they trickle (a residual risk, see README).
        let after_timeout = wait_for_stats(pid, Duration::from_secs(IDLE_TIMEOUT + 5), |s| {
            s.threads <= baseline.threads + 55
        });
        drop(slowloris_running);
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

/// The server's worker threads.
fn worker_threads(server: &TestServer) -> usize {
    threads_named(server.pid(), "worker-")
}

#[test]
fn workers_beyond_the_turns_start_only_as_concurrent_writes_need_them() {
    let server = TestServer::start_with(&["--workers", "2"]);
    // A thread takes its name once it runs, a moment after it is started.
    let named = Instant::now() + Duration::from_secs(2);
    while worker_threads(&server) < 2 && Instant::now() < named {
        thread::sleep(Duration::from_millis(20));
    }
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

/// Every kind of head the HTTP layer refuses, each on a connection of its
/// own, with the status it gets.
const HOSTILE: &[(&[u8], u16)] = &[
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"GET /articles HTTP/2.0\r\nHost: t\r\n\r\n", 505),
    (b"GET /articles HTTP/3.0\r\nHost: t\r\n\r\n", 505),
    (
        b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
        400,
    ),
    (
        b"POST /articles HTTP/1.1\r\nHost: t\r\nContent-Length: 2, 40\r\n\r\n{}",
        400,
    ),
    (
        b"GET /articles HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n",
        400,
    ),
    (b"GET /articles HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    (b"GET /articles HTTP/1.1\nHost: t\n\n", 400),
    (b"\x00\x01garbage\r\n\r\n", 400),
];

/// The contract: none of these costs a thread, a descriptor or memory a
/// second after its connection ends. 1,000 of them, every kind, then the
/// counts are back where they were.
#[test]
fn a_burst_of_refused_heads_leaves_nothing_behind() {
    const COUNT: usize = 1_000;
    let server = TestServer::start();
    let pid = server.pid();
    server.assert_serving();
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9_000));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX: {}\r\n\r\n",
        "b".repeat(40_000)
    );
    let many_lines = format!(
        "GET / HTTP/1.1\r\nHost: t\r\n{}\r\n",
        "X: 1\r\n".repeat(101)
    );
    let mut kinds: Vec<(&[u8], u16)> = HOSTILE.to_vec();
    kinds.push((long_line.as_bytes(), 414));
    kinds.push((big_head.as_bytes(), 431));
    kinds.push((many_lines.as_bytes(), 431));
    let before = wait_for_stats(pid, Duration::from_secs(2), |_| false);
    let started = Instant::now();
    for n in 0..COUNT {
        let (request, status) = kinds[n % kinds.len()];
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.write_all(request).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        assert_eq!(
            status_of(&reply),
            Some(status),
            "{}",
            String::from_utf8_lossy(&request[..request.len().min(60)])
        );
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains("Connection: close") && text.contains("application/problem+json"));
    }
    let took = started.elapsed();
    server.assert_serving();
    let after = wait_for_stats(pid, Duration::from_secs(1), |stats| {
        stats.threads <= before.threads && stats.fds <= before.fds
    });
    let threads = after.threads as i64 - before.threads as i64;
    let fds = after.fds as i64 - before.fds as i64;
    let rss = after.rss_kib as i64 - before.rss_kib as i64;
    println!(
        "{COUNT} refused heads in {took:?}: threads {threads:+}, descriptors {fds:+}, \
         RSS {rss:+} KiB; before {before:?}, after {after:?}"
    );
    assert!(
        threads <= 0 && fds <= 0,
        "left behind: {threads} threads, {fds} descriptors"
    );
}

/// Here, not in the `it` binary: `articles_db_busy_errors_total` counts for
/// the whole process, so another server in the same process could move it.
#[test]
fn metrics_count_by_route_pattern_never_the_raw_path() {
    let server = TestServer::start();
    let created = server.create("m", "c", &[]);
    server.get(&format!("/articles/{}", created["id"]));
    server.get("/articles/987654");
    server.get("/some/secret/path");
    let resp = server.get("/metrics");
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = resp.text();
    let pools = match postgres() {
        false => [
            "articles_db_pool_connections{pool=\"read\",state=\"idle\"}",
            "articles_db_pool_connections{pool=\"write\",state=\"in_use\"} 0",
        ],
        // One pool serves reads and writes.
        true => [
            "articles_db_pool_connections{pool=\"postgres\",state=\"idle\"}",
            "articles_db_pool_connections{pool=\"postgres\",state=\"in_use\"} 0",
        ],
    };
    for expected in pools.into_iter().chain([
        "articles_http_requests_total{method=\"POST\",route=\"/articles\",status=\"201\"} 1",
        "articles_http_requests_total{method=\"GET\",route=\"/articles/{id}\",status=\"200\"} 1",
        "articles_http_requests_total{method=\"GET\",route=\"/articles/{id}\",status=\"404\"} 1",
        "articles_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "articles_http_request_duration_seconds_count{route=\"/articles/{id}\"} 2",
        "articles_http_requests_in_flight 1",
        "articles_db_busy_errors_total 0",
        "articles_build_info{version=\"",
    ]) {
        assert!(text.contains(expected), "missing {expected}\n{text}");
    }
    assert!(
        !text.contains("987654") && !text.contains("secret"),
        "raw paths leaked into labels"
    );
}
