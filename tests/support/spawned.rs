//! The `articles` binary as a process of its own: the `process` binary's
//! kind of test server (signals, SIGKILL, /proc, its own log), and the
//! command line under test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::database::TempDir;
use crate::support::server::{self, server_args, Kind};
use crate::support::TIMEOUT;

/// A server that is a process of its own.
pub type TestServer = server::TestServer<Spawned>;

/// The `articles` binary under test.
pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_articles"))
}

/// Runs the binary with `args` and the variables `env` (and no `RUST_LOG`,
/// so that standard error holds only what the command itself says) to its
/// end.
pub fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    binary()
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// What a run printed on standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The server process, logging to `stderr.log` in its directory; killed
/// when dropped.
pub struct Spawned {
    child: Child,
    log: PathBuf,
}

impl Kind for Spawned {
    fn launch(dir: TempDir, db: &str, args: &[&str], env: &[(&str, &str)]) -> TestServer {
        let mut command = binary();
        command
            .args(server_args(db, args))
            .envs(env.iter().copied());
        TestServer::spawn(dir, db, command)
    }

    /// Through the command line: `articles user add NAME --db DB`, whose
    /// last line printed is the token.
    fn add_user(db: &str, name: &str) -> String {
        let output = run(&["user", "add", name, "--db", db], &[]);
        assert!(output.status.success(), "{output:?}");
        let out = String::from_utf8(output.stdout).unwrap();
        out.lines().last().unwrap().to_owned()
    }
}

impl TestServer {
    /// Runs `command`, which must start a server on port 0 with `--db db`
    /// (possibly through a wrapper that execs it), logging to `stderr.log`
    /// in `dir`.
    pub fn spawn(dir: TempDir, db: &str, mut command: Command) -> TestServer {
        let log = dir.path().join("stderr.log");
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start articles");
        let addr = match read_listening_line(&mut child) {
            Ok(addr) => addr,
            Err(line) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not start: first line {line:?}; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        TestServer {
            kind: Spawned { child, log },
            addr,
            dir,
            db: db.to_owned(),
        }
    }

    /// Everything the server has logged up to now, flushed: the server
    /// buffers its log for up to 100 ms, so this sends a request with a
    /// unique id and waits until its access line is in the file.
    pub fn flushed_log(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let marker = format!("log-marker-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.request("GET", "/healthz", &[("X-Request-Id", &marker)], None);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let log = self.log();
            if log.contains(&marker) {
                return log;
            }
            assert!(Instant::now() < deadline, "the log never showed {marker}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server has logged so far (it buffers access lines for
    /// up to 100 ms; see `flushed_log`).
    pub fn log(&self) -> String {
        self.kind.log()
    }

    /// Kills the server (SIGKILL: no clean shutdown) and starts a new one on
    /// the same database, with the default flags.
    pub fn kill_and_restart(self) -> TestServer {
        self.restart_with("KILL", &[])
    }

    /// Stops the server, if still running, with `signal` ("KILL": no clean
    /// shutdown; "TERM": a graceful one), then starts a new one on the same
    /// database (file or PostgreSQL database) with `args`.
    pub fn restart_with(mut self, signal: &str, args: &[&str]) -> TestServer {
        if self.alive() {
            self.signal(signal);
            self.wait_exit(Duration::from_secs(15))
                .unwrap_or_else(|| panic!("still running 15 s after SIG{signal}"));
        }
        // The directory (and with it a PostgreSQL database) moves on to the
        // new server.
        let TestServer { kind, dir, db, .. } = self;
        drop(kind);
        TestServer::launch(dir, &db, args, &[])
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.kind.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.kind.child.try_wait().unwrap().is_none()
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.kind.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Spawned {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said, the last lines first
        // to matter: CI keeps only the test's output.
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- the server's last log lines ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Reads `listening on http://HOST:PORT` from the child's standard output;
/// the line read otherwise.
fn read_listening_line(child: &mut Child) -> Result<SocketAddr, String> {
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    line.trim()
        .strip_prefix("listening on http://")
        .and_then(|addr| addr.parse().ok())
        .ok_or(line)
}
