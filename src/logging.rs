//! The log: env_logger's filtering (`RUST_LOG`) and our one-line format,
//! written to standard error through a buffer.
//!
//! env_logger writes and flushes every record, so each request's access line
//! was a write(2) of its own: about a tenth of the cost of serving
//! `GET /articles/{id}`. Here records collect in a 64 KiB buffer that a
//! background thread flushes every 100 ms; a warning or an error is flushed
//! at once, and so is everything at exit. A process killed outright loses at
//! most the last 100 ms of access lines.
//!
//! Lines are formatted straight into that buffer. Through env_logger's
//! formatter (its own buffer, then a copy into ours) an access line cost
//! twice the instructions.

use std::io::{self, BufWriter, Stderr, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::time::{now_millis, write_rfc3339_millis};

/// Bytes of log kept before a write.
const BUFFER_BYTES: usize = 64 * 1024;
/// The longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

type Shared = Arc<Mutex<BufWriter<Stderr>>>;

/// Installs the logger; the default level is `info`, which includes the
/// access log. Start it after blocking termination signals: its flushing
/// thread must not be the one they are delivered to.
pub fn init() {
    let out: Shared = Arc::new(Mutex::new(BufWriter::with_capacity(
        BUFFER_BYTES,
        io::stderr(),
    )));
    let filter =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max_level = filter.filter();
    if log::set_boxed_logger(Box::new(Logger {
        filter,
        out: Arc::clone(&out),
    }))
    .is_ok()
    {
        log::set_max_level(max_level);
        if max_level != LevelFilter::Off {
            let _ = thread::Builder::new()
                .name("log-flush".into())
                .spawn(move || loop {
                    thread::sleep(FLUSH_EVERY);
                    let _ = lock(&out).flush();
                });
        }
    }
}

/// Writes out whatever the log holds; call before the process exits.
pub fn flush() {
    log::logger().flush();
}

struct Logger {
    /// Used for its filter only (`RUST_LOG`).
    filter: env_logger::Logger,
    out: Shared,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    /// `2026-11-24T10:00:00.123Z INFO  target: message`, one line.
    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let mut time = [0u8; 24];
        write_rfc3339_millis(now_millis(), &mut time);
        let mut out = lock(&self.out);
        let _ = out.write_all(&time);
        let _ = writeln!(
            out,
            " {:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
        if record.level() <= Level::Warn {
            let _ = out.flush();
        }
    }

    fn flush(&self) {
        let _ = lock(&self.out).flush();
    }
}

fn lock(out: &Shared) -> MutexGuard<'_, BufWriter<Stderr>> {
    out.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
