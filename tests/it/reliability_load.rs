//! Concurrency under load: many writers and readers on every endpoint,
//! every response checked byte by byte, totals and acknowledged states
//! checked at the end. (SIGTERM under load is in the `process` binary's
//! `signals`.)
//!
//! `RELIABILITY_SCALE=10` runs ten times longer; `RELIABILITY_SEED`
//! replays a run.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::in_process::TestServer;
use crate::support::ledger::{self, Writer};
use crate::support::load::{checked_stats, readers, writers, Reader, OTHERS};
use crate::support::rng;
use crate::support::Conn;

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
