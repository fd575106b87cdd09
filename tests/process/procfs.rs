//! What the server process holds, read from /proc: threads, open
//! descriptors and resident memory.

use std::time::{Duration, Instant};

/// A snapshot of a process's resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStats {
    /// Entries of /proc/PID/task.
    pub threads: usize,
    /// Entries of /proc/PID/fd.
    pub fds: usize,
    /// VmRSS from /proc/PID/status, in KiB.
    pub rss_kib: u64,
}

/// The resources of process `pid` now.
pub fn proc_stats(pid: u32) -> ProcStats {
    let count = |dir: &str| {
        std::fs::read_dir(format!("/proc/{pid}/{dir}"))
            .map(|entries| entries.count())
            .unwrap_or(0)
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    ProcStats {
        threads: count("task"),
        fds: count("fd"),
        rss_kib,
    }
}

/// Polls `pid` until `settled` holds for its resources or `limit` passes;
/// returns the last snapshot either way.
pub fn wait_for_stats(
    pid: u32,
    limit: Duration,
    settled: impl Fn(&ProcStats) -> bool,
) -> ProcStats {
    let deadline = Instant::now() + limit;
    loop {
        let stats = proc_stats(pid);
        if settled(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Threads of process `pid` whose name starts with `prefix` (from
/// /proc/PID/task/TID/comm): the server names its workers `worker-N`.
pub fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .filter(|name| name.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}
