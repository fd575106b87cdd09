//! Bounded memory: many distinct request ids, query strings, paths,
//! methods, connections and invalid tokens do not grow the server's resident
//! memory (VmRSS from /proc/PID/status) without bound.
//!
//! `RELIABILITY_SCALE=10` sends ten times as many requests.

use std::thread;

use crate::support::procfs::proc_stats;
use crate::support::rng::{self, Rng};
use crate::support::{Conn, TestServer};

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
fn the_server_runs_with_small_thread_caches() {
    if !cfg!(all(target_os = "linux", target_env = "gnu")) {
        println!("skipped: glibc only");
        return;
    }
    let environ = |server: &TestServer| {
        std::fs::read(format!("/proc/{}/environ", server.child.id()))
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
