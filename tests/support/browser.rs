//! A real browser for the tests: headless Chromium driven through
//! ChromeDriver's W3C WebDriver protocol (JSON over HTTP, spoken with this
//! suite's own `Conn`), so no WebDriver crate is needed.
//!
//! The browser tests are `#[ignore]`d, so that a machine without Chromium
//! neither fails them nor counts them as passed; `.ci/run` installs
//! Debian's `chromium` and `chromium-driver` and runs them with
//! `--ignored`. Run so, a missing browser fails them.

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
    /// Starts ChromeDriver and a headless Chromium session, with a window
    /// of 1280 by 800 pixels.
    pub fn start() -> Browser {
        let driver = find("chromedriver")
            .expect("no chromedriver on the PATH (apt-get install chromium chromium-driver)");
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
        browser
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

    /// Runs `script` as a function body with `args`; what it returns
    /// (elements come back as references, see `Element`).
    pub fn run(&self, script: &str, args: &[Value]) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            &json!({"script": script, "args": args}),
        )
    }

    /// Waits up to 5 s for `script` to return something truthy (not
    /// `null`, `false`, `0` or `""`) and returns it; panics saying `what`
    /// was awaited, and what the script last returned.
    pub fn wait_for(&self, what: &str, script: &str, args: &[Value]) -> Value {
        self.wait_within(Duration::from_secs(5), what, script, args)
    }

    /// `wait_for`, waiting up to `within`.
    pub fn wait_within(&self, within: Duration, what: &str, script: &str, args: &[Value]) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let value = self.run(script, args);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waited {within:?} for {what}; last: {value}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The one visible control (input, textarea, select, button, link)
    /// whose accessible name is `name`, as Chromium computes it; with a
    /// trailing `…` in `name`, whose name starts with the word before it.
    pub fn control(&self, name: &str) -> Element {
        let found = self.controls(name);
        assert_eq!(found.len(), 1, "controls named {name:?}: {}", found.len());
        found.into_iter().next().unwrap()
    }

    /// Every visible control named `name` (see `control`), in document
    /// order.
    pub fn controls(&self, name: &str) -> Vec<Element> {
        let (word, prefix) = match name.strip_suffix('…') {
            Some(word) => (word, true),
            None => (name, false),
        };
        let found = self.run(FIND_CONTROLS, &[json!(word), json!(prefix)]);
        let elements: Vec<Element> = found
            .as_array()
            .unwrap()
            .iter()
            .map(|value| Element(value[ELEMENT].as_str().unwrap().to_owned()))
            .collect();
        // The script's guess at the name, checked against the browser's own
        // accessible-name computation (which lags a moment behind a control
        // that has just appeared).
        for element in &elements {
            let deadline = Instant::now() + Duration::from_secs(2);
            loop {
                let label = self.label(element);
                let named = match prefix {
                    true => label == word || label.starts_with(&format!("{word} ")),
                    false => label == word,
                };
                if named {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "Chromium names the control {label:?}, not {name:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        elements
    }

    /// The accessible name Chromium gives `element`.
    fn label(&self, element: &Element) -> String {
        let label = self.session_command("GET", &element.path("/computedlabel"), &json!({}));
        label.as_str().unwrap().to_owned()
    }

    /// The element `script` returns.
    pub fn element(&self, script: &str, args: &[Value]) -> Element {
        let value = self.run(script, args);
        let id = value[ELEMENT].as_str();
        Element(
            id.unwrap_or_else(|| panic!("not an element: {value}"))
                .to_owned(),
        )
    }

    /// Clicks `element` as a user would (it must be visible and enabled).
    pub fn click(&self, element: &Element) {
        self.session_command("POST", &element.path("/click"), &json!({}));
    }

    /// Clicks `element` twice in quick succession, as one double click.
    pub fn double_click(&self, element: &Element) {
        let origin = element.to_json();
        let clicks = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "origin": origin, "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0},
                {"type": "pointerDown", "button": 0}, {"type": "pointerUp", "button": 0},
            ]
        }]});
        self.session_command("POST", "/actions", &clicks);
    }

    /// Replaces the text of an input or textarea with `text`, typed.
    pub fn fill(&self, element: &Element, text: &str) {
        self.session_command("POST", &element.path("/clear"), &json!({}));
        self.session_command("POST", &element.path("/value"), &json!({"text": text}));
    }

    /// Presses keys on whatever has the focus: text, and `Browser::TAB`,
    /// `Browser::ENTER` and the like.
    pub fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        let body = json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]});
        self.session_command("POST", "/actions", &body);
    }

    /// The Tab key, for `keys`.
    pub const TAB: char = '\u{E004}';
    /// The Enter key, for `keys`.
    pub const ENTER: char = '\u{E007}';

    /// The accessible name of the focused element.
    pub fn focused(&self) -> String {
        let element = self.session_command("GET", "/element/active", &json!({}));
        self.label(&Element(element[ELEMENT].as_str().unwrap().to_owned()))
    }

    /// Resizes the window so that the page is `width` CSS pixels wide.
    pub fn resize(&self, width: u32, height: u32) {
        self.session_command(
            "POST",
            "/window/rect",
            &json!({"width": width, "height": height}),
        );
    }

    /// Has the page report `prefers-color-scheme: scheme` (`light` or
    /// `dark`), through the Chrome DevTools Protocol.
    pub fn prefer_color_scheme(&self, scheme: &str) {
        let features = [json!({"name": "prefers-color-scheme", "value": scheme})];
        self.session_command(
            "POST",
            "/goog/cdp/execute",
            &json!({"cmd": "Emulation.setEmulatedMedia", "params": {"features": features}}),
        );
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self.session_command("GET", "/screenshot", &json!({}));
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
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
        let body = match method {
            "GET" | "DELETE" => Vec::new(),
            _ => serde_json::to_vec(body).unwrap(),
        };
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

/// An element of the page, by its WebDriver reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

impl Element {
    fn path(&self, command: &str) -> String {
        format!("/element/{}{command}", self.0)
    }

    /// The element as a script argument (`arguments[i]` is the element).
    pub fn to_json(&self) -> Value {
        json!({ ELEMENT: self.0 })
    }
}

/// The key WebDriver gives an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The visible controls whose name is `arguments[0]` (or starts with it
/// and a space, if `arguments[1]`): a sketch of the accessible-name
/// computation, enough for our pages; `Browser::controls` checks each
/// against Chromium's own.
const FIND_CONTROLS: &str = r#"
const [name, prefix] = arguments;
const text = (node) => (node ? node.textContent : '');
function label(el) {
  if (el.hasAttribute('aria-label')) return el.getAttribute('aria-label');
  if (el.hasAttribute('aria-labelledby')) {
    return el.getAttribute('aria-labelledby').split(/\s+/)
      .map((id) => text(document.getElementById(id))).join(' ');
  }
  if (el.labels && el.labels.length) return Array.from(el.labels, text).join(' ');
  if (el.matches('button, a')) return el.textContent;
  return '';
}
// Not hidden, not in a closed <details>, not invisible.
const visible = (el) => el.checkVisibility({ visibilityProperty: true });
return Array.from(document.querySelectorAll('input, textarea, select, button, a'))
  .filter(visible)
  .filter((el) => {
    const n = label(el).replace(/\s+/g, ' ').trim();
    return n === name || (prefix && n.startsWith(name + ' '));
  });
"#;

/// The path of `program` on the `PATH`, if any.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
