//! A real browser for the tests: headless Chromium driven through
//! ChromeDriver's W3C WebDriver protocol (JSON over HTTP, spoken with this
//! suite's own `Conn`), so no WebDriver crate is needed.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver` and sets
//! `ARTICLES_TEST_BROWSER=required`. Elsewhere, without a `chromedriver` on
//! the `PATH`, the browser tests say so and pass without running; with the
//! variable set, a missing browser fails them.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::receiver::Receiver;
use crate::support::Conn;

/// A headless browser with one window, closed when dropped.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session; `None` (after
    /// saying why) when ChromeDriver is not installed and not required.
    pub fn start(test: &str) -> Option<Browser> {
        let Some(driver) = find("chromedriver") else {
            let required = std::env::var("ARTICLES_TEST_BROWSER").is_ok_and(|v| v == "required");
            assert!(!required, "{test}: no chromedriver on the PATH");
            eprintln!(
                "{test}: skipped, no chromedriver on the PATH \
                 (apt-get install chromium chromium-driver)"
            );
            return None;
        };
        let port = Receiver::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser {
            driver: child,
            addr,
            session: String::new(),
        };
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,800",
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"args": args}
        }}});
        let created = browser.command("POST", "/session", &capabilities);
        browser.session = created["sessionId"].as_str().unwrap().to_owned();
        browser.session_command("POST", "/timeouts", &json!({"script": 60_000}));
        Some(browser)
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_command("POST", "/url", &json!({"url": url}));
    }

    /// Runs `script` as an asynchronous script: its last argument is the
    /// callback that ends it, with the value returned here. `args` come
    /// first.
    pub fn run_async(&self, script: &str, args: &[Value]) -> Value {
        self.session_command(
            "POST",
            "/execute/async",
            &json!({"script": script, "args": args}),
        )
    }

    fn session_command(&self, method: &str, path: &str, body: &Value) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.command(method, &path, body)
    }

    /// One WebDriver command; its `value`, or a panic with the driver's
    /// error.
    fn command(&self, method: &str, path: &str, body: &Value) -> Value {
        let mut conn = Conn::open(self.addr);
        conn.stream()
            .set_read_timeout(Some(Duration::from_secs(90)))
            .unwrap();
        let body = serde_json::to_vec(body).unwrap();
        // ChromeDriver refuses a Host other than its own address.
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        conn.stream().write_all(&request).unwrap();
        let resp = conn.read_response(false);
        let value = resp.json()["value"].take();
        assert_eq!(resp.status, 200, "WebDriver {method} {path}: {value}");
        value
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(|| self.command("DELETE", &path, &json!({})));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The path of `program` on the `PATH`, if any.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
