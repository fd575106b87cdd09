//! A change-feed stream read as a browser's `EventSource` reads it: the
//! response head, then frames (`id:`, `event:`, `data:` and `: comment`
//! lines, ended by a blank line) until the server closes the connection.

use std::io::BufRead;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use super::{Conn, Resp};

/// One frame of a stream, its fields as sent.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    /// The text of a comment line (`: keep-alive`).
    pub comment: Option<String>,
}

impl Frame {
    /// The `id:` as a `seq`.
    pub fn seq(&self) -> Option<i64> {
        self.id.as_ref().map(|id| id.parse().expect("a numeric id"))
    }

    /// The `data:` as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().expect("data")).expect("JSON data")
    }
}

/// An open stream.
pub struct Stream {
    conn: Conn,
    /// The response head (and, when it is not a stream, its body).
    pub head: Resp,
    /// The `seq` of the last `id:` received, as `EventSource` keeps it.
    pub last_id: Option<i64>,
}

impl Stream {
    /// `GET path` with `Accept: text/event-stream` and `headers`; reads the
    /// response head (and the body of an answer that is not a stream).
    pub fn open(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut conn = Conn::open(addr);
        let mut all = vec![("Accept", "text/event-stream")];
        all.extend_from_slice(headers);
        let head = conn.request("GET", path, &all, None);
        Stream {
            conn,
            head,
            last_id: None,
        }
    }

    #[allow(dead_code)] // only the `it` binary's tests use it
    /// Reads on time out after `limit` rather than the default 10 s.
    pub fn timeout(&mut self, limit: Duration) {
        self.conn.stream().set_read_timeout(Some(limit)).unwrap();
    }

    /// The next frame; `None` once the server has closed the stream. Panics
    /// on a read timeout.
    pub fn frame(&mut self) -> Option<Frame> {
        let mut frame = Frame::default();
        let mut any = false;
        loop {
            let mut line = String::new();
            let read = self.conn.reader.read_line(&mut line).expect("a frame line");
            if read == 0 {
                return any.then_some(frame);
            }
            let line = line.strip_suffix('\n').expect("a whole line");
            if line.is_empty() {
                if any {
                    if let Some(seq) = frame.seq() {
                        self.last_id = Some(seq);
                    }
                    return Some(frame);
                }
                continue;
            }
            any = true;
            if let Some(comment) = line.strip_prefix(':') {
                frame.comment = Some(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(": ").expect("field: value");
            let slot = match field {
                "id" => &mut frame.id,
                "event" => &mut frame.event,
                "data" => &mut frame.data,
                "retry" => &mut frame.retry,
                other => panic!("unknown field {other:?} in {line:?}"),
            };
            assert!(slot.is_none(), "{field} twice in one frame");
            *slot = Some(value.to_owned());
        }
    }

    /// The next event (a frame with `data:`), skipping comments, `retry:`
    /// and bare `id:` frames; `None` once the stream has ended.
    pub fn event(&mut self) -> Option<Frame> {
        loop {
            let frame = self.frame()?;
            if frame.data.is_some() {
                return Some(frame);
            }
        }
    }

    #[allow(dead_code)] // only the `it` binary's tests use it
    /// The events until one with `seq` at least `last` has been told (as an
    /// event or a bare `id:`); panics if the stream ends first.
    pub fn events_through(&mut self, last: i64) -> Vec<Frame> {
        let mut events = Vec::new();
        while self.last_id.is_none_or(|id| id < last) {
            let frame = self
                .frame()
                .unwrap_or_else(|| panic!("the stream ended before {last}"));
            if frame.data.is_some() {
                events.push(frame);
            }
        }
        events
    }
}
