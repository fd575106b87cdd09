//! A webhook receiver for tests: a real HTTP/1.1 listener on 127.0.0.1 that
//! records every request it gets and answers each as the test says.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest a test waits for the deliveries it expects, retries
/// included.
pub const WAIT: Duration = Duration::from_secs(15);

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// When its last byte arrived.
    pub at: Instant,
    /// `POST /hook HTTP/1.1`.
    #[allow(dead_code)] // only the `process` binary's tests use it
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Delivery {
    /// The first value of a header, any case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn id(&self) -> &str {
        self.header("webhook-id").expect("webhook-id")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Time to wait before answering.
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// This answer with one more header.
    #[allow(dead_code)] // only the `process` binary's tests use it
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Script = Box<dyn Fn(usize) -> Answer + Send + Sync>;

struct State {
    received: Mutex<Vec<Delivery>>,
    arrived: Condvar,
    stop: AtomicBool,
    /// The answer to the n-th request (from 0).
    script: Script,
}

/// A running receiver; stops listening when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

impl Receiver {
    /// A receiver that answers every request with 200.
    pub fn ok() -> Receiver {
        Receiver::start(|_| Answer::status(200))
    }

    /// A receiver on a free port, answering by `script`.
    pub fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        Receiver::start_on(0, script)
    }

    /// A receiver on `port` (0: any free one), answering by `script`.
    pub fn start_on(
        port: u16,
        script: impl Fn(usize) -> Answer + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            received: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
            script: Box::new(script),
        });
        let accept = {
            let state = Arc::clone(&state);
            thread::spawn(move || {
                for stream in listener.incoming() {
                    if state.stop.load(Ordering::Acquire) {
                        return;
                    }
                    if let Ok(stream) = stream {
                        let state = Arc::clone(&state);
                        thread::spawn(move || serve(&state, stream));
                    }
                }
            })
        };
        Receiver {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// A port on 127.0.0.1 with nothing listening (yet).
    pub fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// The URL to configure with `--webhook`.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Delivery> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests have arrived, for `limit` at
    /// most; returns them all, or panics.
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Delivery> {
        let received = self.state.received.lock().unwrap();
        let (received, _) = self
            .state
            .arrived
            .wait_timeout_while(received, limit, |r| r.len() < count)
            .unwrap();
        assert!(
            received.len() >= count,
            "expected {count} deliveries within {limit:?}, got {}",
            received.len()
        );
        received.clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// Reads one request, records it, answers as scripted, closes.
fn serve(state: &State, mut stream: TcpStream) {
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let Some(mut delivery) = read_request(&mut stream) else {
        return;
    };
    delivery.at = Instant::now();
    let index = {
        let mut received = state.received.lock().unwrap();
        received.push(delivery);
        state.arrived.notify_all();
        received.len() - 1
    };
    let answer = (state.script)(index);
    thread::sleep(answer.delay);
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Length: 2\r\nConnection: close\r\n",
        answer.status
    );
    for (name, value) in &answer.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\nok");
    let _ = stream.write_all(head.as_bytes());
}

fn read_request(stream: &mut TcpStream) -> Option<Delivery> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Delivery {
        at: Instant::now(),
        request_line,
        headers,
        body,
    })
}
