//! `GET /events`: the change feed, as Server-Sent Events or as JSON pages
//! (with an optional long poll).
//!
//! Both run on the connection's own thread (see `server::workers::Inline`),
//! never a worker, and wait on the process's one `store::Feed` rather than
//! polling the database: a stream costs its connection's thread and nothing
//! else while nothing changes.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response::{Reply, JSON};
use crate::http::App;
use crate::metrics::Metrics;
use crate::model::{EventType, FieldError};
use crate::store::StoredEvent;
use crate::util::json;

/// Most events a JSON page may ask for, and the default.
const MAX_LIMIT: u64 = 1000;
const DEFAULT_LIMIT: usize = 100;
/// Longest long poll, in seconds.
const MAX_WAIT_SECONDS: u64 = 60;
/// Events read from the database at a time (each may be as large as an
/// article: `--max-body`).
const READ_BATCH: usize = 100;
/// A JSON page ends once its events reach this many bytes (at least one
/// event): `limit` is a most, and `next` says where to go on.
const PAGE_BYTES: usize = 4 << 20;
/// Events a JSON request examines at most before it answers: with filters
/// that match little, `next` moves on and the client asks again.
const MAX_EXAMINED: usize = 10_000;
/// A comment is sent after this long without anything else, so that idle
/// streams stay open through proxies, and a client that has gone is noticed.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `Content-Type` of a stream.
const EVENT_STREAM: &str = "text/event-stream";

/// Which events a follower wants.
#[derive(Debug, Clone, Default)]
struct Filters {
    tag: Option<String>,
    /// In lower case.
    author: Option<String>,
    types: Option<Vec<EventType>>,
}

impl Filters {
    fn matches(&self, event: &StoredEvent) -> bool {
        self.tag.as_ref().is_none_or(|tag| event.tags.contains(tag))
            && self
                .author
                .as_ref()
                .is_none_or(|author| event.author.as_ref() == Some(author))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t.as_str() == event.kind))
    }
}

/// A stream's request, for the server to run (`follow`) once the head has
/// been sent.
pub(crate) struct EventStream {
    /// After which `seq` to start; `None`: at the present.
    after: Option<i64>,
    filters: Filters,
    /// Counts the stream as open until dropped.
    _open: StreamSlot,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("after", &self.after)
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

/// One open stream, counted in the metrics' gauge until dropped.
struct StreamSlot(Arc<Metrics>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.stream_closed();
    }
}

/// `GET /events`.
pub fn list(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let after = position(req)?;
    let filters = filters(req)?;
    let streamed = req
        .header("Accept")
        .is_some_and(|accept| accept.to_ascii_lowercase().contains(EVENT_STREAM));
    if streamed {
        return stream(app, after, filters);
    }
    let limit = number(req, "limit", 1, MAX_LIMIT)?.map_or(DEFAULT_LIMIT, |n| n as usize);
    let wait = number(req, "wait", 0, MAX_WAIT_SECONDS)?.unwrap_or(0);
    page(app, after, &filters, limit, Duration::from_secs(wait))
}

/// Where to start: `Last-Event-ID`, else `after`, else the present. A value
/// that is not a non-negative integer is a 422, `after` included when
/// `Last-Event-ID` wins over it.
fn position(req: &Req<'_>) -> Result<Option<i64>, ApiError> {
    let after = seq(query(req, "after"), "after")?;
    let last_event_id = seq(req.header("Last-Event-ID").map(str::trim), "Last-Event-ID")?;
    Ok(last_event_id.or(after))
}

/// A position sent as `field`, if it was sent.
fn seq(text: Option<&str>, field: &str) -> Result<Option<i64>, ApiError> {
    text.map(|text| {
        crate::util::decimal(text)
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| invalid(field, "must be a non-negative integer"))
    })
    .transpose()
}

fn query<'r>(req: &'r Req<'_>, name: &str) -> Option<&'r str> {
    req.query
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn number(req: &Req<'_>, name: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
    query(req, name)
        .map(|text| {
            crate::util::decimal(text)
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| invalid(name, &format!("must be an integer from {min} to {max}")))
        })
        .transpose()
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, message)])
}

fn filters(req: &Req<'_>) -> Result<Filters, ApiError> {
    let non_empty = |name| query(req, name).filter(|v| !v.is_empty());
    let types = non_empty("type")
        .map(|list| {
            list.split(',')
                .map(|name| {
                    EventType::parse(name.trim()).ok_or_else(|| {
                        invalid(
                            "type",
                            "must list article.created, article.updated or article.deleted",
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Filters {
        tag: non_empty("tag").map(str::to_owned),
        author: non_empty("author").map(str::to_lowercase),
        types,
    })
}

/// The JSON form: `{"events": [...], "next": M}`, or a reset. `next` is
/// the last event examined: with filters it may pass events that did not
/// match.
fn page(
    app: &App,
    after: Option<i64>,
    filters: &Filters,
    limit: usize,
    wait: Duration,
) -> Result<Reply, ApiError> {
    let Some(mut next) = after else {
        let newest = app.store.feed_position()?;
        return Ok(json_page(&[], newest, false));
    };
    let deadline = Instant::now() + wait;
    let mut events: Vec<String> = Vec::new();
    let (mut bytes, mut examined) = (0, 0);
    loop {
        let read = app.store.events_after(next, READ_BATCH)?;
        if read.horizon > next {
            // What was collected before the horizon moved is still good:
            // the reset comes with the next request.
            return Ok(match events.is_empty() {
                true => json_page(&[], read.newest, true),
                false => json_page(&events, next, false),
            });
        }
        let more = read.events.len() == READ_BATCH;
        for event in read.events.iter() {
            next = event.seq;
            examined += 1;
            if filters.matches(event) {
                let event = with_seq(event.seq, &event.body);
                bytes += event.len();
                events.push(event);
                if events.len() == limit || bytes >= PAGE_BYTES {
                    return Ok(json_page(&events, next, false));
                }
            }
            if examined >= MAX_EXAMINED {
                return Ok(json_page(&events, next, false));
            }
        }
        if more {
            continue;
        }
        // Caught up with what has committed: answer, or wait for news.
        let left = deadline.saturating_duration_since(Instant::now());
        if !events.is_empty() || left.is_zero() || app.shutting_down() {
            return Ok(json_page(&events, next, false));
        }
        let (_, closed) = app.store.feed().wait_past(next, left);
        if closed {
            return Ok(json_page(&events, next, false));
        }
    }
}

fn json_page(events: &[String], next: i64, reset: bool) -> Reply {
    let mut body = Vec::with_capacity(32 + events.iter().map(|e| e.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"events\":[");
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.as_bytes());
    }
    body.extend_from_slice(b"],\"next\":");
    json::push_int(&mut body, next);
    if reset {
        body.extend_from_slice(b",\"reset\":true");
    }
    body.push(b'}');
    Reply::with_body(200, JSON, body)
}

/// An event as the feed sends it: the webhook body with its `seq` first.
fn with_seq(seq: i64, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 24);
    out.push_str("{\"seq\":");
    out.push_str(&seq.to_string());
    out.push(',');
    out.push_str(body.strip_prefix('{').unwrap_or(body));
    out
}

/// The stream form: 503 past `--max-streams`, else a reply the server
/// follows with `follow` once its head is sent.
fn stream(app: &App, after: Option<i64>, filters: Filters) -> Result<Reply, ApiError> {
    if !app.metrics.stream_opened(app.config.max_streams) {
        return Err(ApiError::Unavailable(
            "Too many change-feed streams are open; retry after the indicated delay",
        ));
    }
    let slot = StreamSlot(Arc::clone(&app.metrics));
    // At the present: after what has committed when the stream opens.
    let after = match after {
        Some(after) => Some(after),
        None => Some(app.store.feed_position()?),
    };
    Ok(Reply::stream(EventStream {
        after,
        filters,
        _open: slot,
    })
    .header("Content-Type", EVENT_STREAM)
    .header("Cache-Control", "no-store"))
}

/// Sends a stream's events as they commit, until the client goes (a write
/// fails: at the latest at the next keep-alive), the server stops, or the
/// database fails. Returns the bytes sent.
pub(crate) fn follow(app: &App, stream: EventStream, out: &mut dyn Write) -> u64 {
    let mut sent = Sent {
        out,
        bytes: 0,
        last_write: Instant::now(),
    };
    if let Err(err) = send_events(app, &stream, &mut sent) {
        log::debug!("change feed: a stream ends: {err}");
    }
    sent.bytes
}

fn send_events(app: &App, stream: &EventStream, sent: &mut Sent<'_>) -> io::Result<()> {
    sent.write(b"retry: 1000\n\n")?;
    let mut position = stream.after.unwrap_or(0);
    // The `seq` the client was last told of (`id:`).
    let mut told = position;
    loop {
        if app.shutting_down() {
            return Ok(());
        }
        let read = app
            .store
            .events_after(position, READ_BATCH)
            .map_err(io::Error::other)?;
        if read.horizon > position {
            let oldest = read.oldest.map_or("null".to_owned(), |o| o.to_string());
            let data = format!(
                "{{\"reset\":true,\"after\":{position},\"oldest\":{oldest},\"next\":{}}}",
                read.newest
            );
            sent.write(format!("id: {}\nevent: reset\ndata: {data}\n\n", read.newest).as_bytes())?;
            position = read.newest;
            told = position;
            continue;
        }
        for event in &read.events {
            // Catching up past events that do not match can take a while:
            // the client still hears from the stream within the keep-alive
            // (the position of the events passed so far, not this one).
            if told < position && sent.last_write.elapsed() >= KEEP_ALIVE {
                sent.write(format!("id: {position}\n\n").as_bytes())?;
                sent.flush()?;
                told = position;
            }
            position = event.seq;
            if stream.filters.matches(event) {
                let frame = format!(
                    "id: {}\nevent: {}\ndata: {}\n\n",
                    event.seq,
                    event.kind,
                    with_seq(event.seq, &event.body)
                );
                sent.write(frame.as_bytes())?;
                told = position;
                app.metrics.event_sent();
            }
        }
        if read.events.len() == READ_BATCH {
            continue;
        }
        // Skipped events move the position on too, so that resuming never
        // replays them.
        if told < position {
            sent.write(format!("id: {position}\n\n").as_bytes())?;
            told = position;
        }
        sent.flush()?;
        let idle = KEEP_ALIVE.saturating_sub(sent.last_write.elapsed());
        let (newest, closed) = app.store.feed().wait_past(position, idle);
        if closed {
            return Ok(());
        }
        if newest <= position && sent.last_write.elapsed() >= KEEP_ALIVE {
            sent.write(b": keep-alive\n\n")?;
            sent.flush()?;
        }
    }
}

/// What a stream has written.
struct Sent<'a> {
    out: &'a mut dyn Write,
    bytes: u64,
    last_write: Instant,
}

impl Sent<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.bytes += bytes.len() as u64;
        self.last_write = Instant::now();
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, kind: &str, tags: &[&str], author: Option<&str>) -> StoredEvent {
        StoredEvent {
            seq,
            kind: kind.into(),
            body: format!("{{\"type\":\"{kind}\",\"timestamp\":\"t\",\"data\":{{}}}}"),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            author: author.map(str::to_owned),
        }
    }

    #[test]
    fn filters_match_tags_authors_and_types() {
        let any = Filters::default();
        let e = event(1, "article.updated", &["web", "rust"], Some("alice"));
        assert!(any.matches(&e));
        let tag = Filters {
            tag: Some("web".into()),
            ..Filters::default()
        };
        assert!(tag.matches(&e));
        assert!(!tag.matches(&event(2, "article.updated", &["go"], None)));
        let author = Filters {
            author: Some("alice".into()),
            ..Filters::default()
        };
        assert!(author.matches(&e));
        assert!(!author.matches(&event(3, "article.created", &[], None)));
        let types = Filters {
            types: Some(vec![EventType::Created, EventType::Deleted]),
            ..Filters::default()
        };
        assert!(!types.matches(&e));
        assert!(types.matches(&event(4, "article.deleted", &[], None)));
    }

    #[test]
    fn an_event_carries_its_seq_first() {
        assert_eq!(
            with_seq(
                17,
                r#"{"type":"article.created","timestamp":"t","data":{}}"#
            ),
            r#"{"seq":17,"type":"article.created","timestamp":"t","data":{}}"#
        );
        let page = json_page(&["{\"seq\":1}".to_owned()], 1, false);
        assert_eq!(page.body, br#"{"events":[{"seq":1}],"next":1}"#);
        let reset = json_page(&[], 9, true);
        assert_eq!(reset.body, br#"{"events":[],"next":9,"reset":true}"#);
    }
}
