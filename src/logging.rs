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

use crate::util::json;
use crate::util::time::{now_millis, write_rfc3339_millis};

/// Bytes of log kept before a write.
const BUFFER_BYTES: usize = 64 * 1024;
/// The longest a line waits in the buffer.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Longest request method, path or request id in an access line.
const MAX_LOGGED: usize = 256;

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

/// One request's access line, e.g.
/// `GET /articles/1 200 673 0.023ms 5f3a9c1e20b47d6a-1f`: method, path,
/// status, body bytes, duration, request id.
pub struct Access<'a> {
    /// The request method.
    pub method: &'a str,
    /// The path, without the query string.
    pub path: &'a str,
    /// The status sent.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    /// From the request's start to the response written.
    pub elapsed: Duration,
    /// The request id.
    pub request_id: &'a str,
}

impl Access<'_> {
    /// Logs the line (target `access`, level info). It is put together by
    /// hand and handed to `log` whole (callgrind: 1,200 instructions a
    /// line, where `format_args!` with six arguments took 2,900).
    pub fn log(&self) {
        if log::log_enabled!(target: "access", Level::Info) {
            let line = self.line();
            log::info!(target: "access", "{line}");
        }
    }

    fn line(&self) -> String {
        let mut line =
            Vec::with_capacity(self.method.len() + self.path.len() + self.request_id.len() + 32);
        push_loggable(&mut line, self.method);
        line.push(b' ');
        push_loggable(&mut line, self.path);
        line.push(b' ');
        json::push_int(&mut line, i64::from(self.status));
        line.push(b' ');
        json::push_int(&mut line, i64::try_from(self.bytes).unwrap_or(i64::MAX));
        line.push(b' ');
        // Microseconds, rounded, as milliseconds with three decimals.
        let micros = i64::try_from((self.elapsed.as_nanos() + 500) / 1000).unwrap_or(i64::MAX);
        json::push_int(&mut line, micros / 1000);
        let fraction = micros % 1000;
        line.extend_from_slice(&[
            b'.',
            digit(fraction / 100),
            digit(fraction / 10),
            digit(fraction),
        ]);
        line.extend_from_slice(b"ms ");
        push_loggable(&mut line, self.request_id);
        // Only printable ASCII went in.
        String::from_utf8(line).unwrap_or_default()
    }
}

/// The last decimal digit of `n`.
fn digit(n: i64) -> u8 {
    b'0' + (n % 10) as u8
}

/// Appends a method, path or request id made safe for one log line:
/// printable ASCII only, anything else as `?`, at most `MAX_LOGGED`
/// characters. tiny_http accepts any ASCII method, control characters
/// included, and any length.
fn push_loggable(line: &mut Vec<u8>, text: &str) {
    for c in text.chars().take(MAX_LOGGED) {
        line.push(match c {
            '!'..='~' => c as u8,
            _ => b'?',
        });
    }
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
        let level = match record.level() {
            Level::Error => " ERROR ",
            Level::Warn => " WARN  ",
            Level::Info => " INFO  ",
            Level::Debug => " DEBUG ",
            Level::Trace => " TRACE ",
        };
        let mut out = lock(&self.out);
        let _ = out.write_all(&time);
        let _ = out.write_all(level.as_bytes());
        let _ = out.write_all(record.target().as_bytes());
        let _ = out.write_all(b": ");
        let _ = out.write_fmt(*record.args());
        let _ = out.write_all(b"\n");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loggable(text: &str) -> String {
        let mut line = Vec::new();
        push_loggable(&mut line, text);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn access_lines_read_as_before() {
        let line = Access {
            method: "GET",
            path: "/articles/1",
            status: 200,
            bytes: 673,
            elapsed: Duration::from_nanos(23_499),
            request_id: "ab-1",
        };
        assert_eq!(line.line(), "GET /articles/1 200 673 0.023ms ab-1");
        let slow = Access {
            method: "POST",
            path: "/x",
            status: 503,
            bytes: 0,
            elapsed: Duration::from_micros(12_345_678),
            request_id: "id",
        };
        assert_eq!(slow.line(), "POST /x 503 0 12345.678ms id");
    }

    #[test]
    fn logged_text_is_printable_and_bounded() {
        assert_eq!(loggable("/a\x1b[31m\r\n"), "/a?[31m??");
        assert_eq!(loggable("/é/ü x"), "/?/??x");
        assert_eq!(loggable(""), "");
        assert_eq!(loggable(&"x".repeat(1000)).len(), MAX_LOGGED);
        assert_eq!(loggable(&"é".repeat(300)), "?".repeat(MAX_LOGGED));
        let ends_mixed = format!("{}é", "x".repeat(MAX_LOGGED - 1));
        assert_eq!(
            loggable(&ends_mixed),
            format!("{}?", "x".repeat(MAX_LOGGED - 1))
        );
    }
}
