//! The change feed, `GET /events`: as a stream (Server-Sent Events) and as
//! JSON pages with a long poll. Every acknowledged change once and in
//! order, starting positions and resuming, filters, the reset, the caps.

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::in_process::TestServer;
use crate::support::rng::{seed, Rng};
use crate::support::sse::{Frame, Stream};
use crate::support::Conn;

/// `GET /events` + `query` as JSON (200 expected).
fn page(server: &TestServer, query: &str) -> Value {
    let resp = server.get(&format!("/events{query}"));
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    resp.json()
}

/// The `seq`s of a JSON page's events.
fn seqs(page: &Value) -> Vec<i64> {
    events(page)
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

fn events(page: &Value) -> &Vec<Value> {
    page["events"].as_array().unwrap()
}

/// The newest `seq`, as `GET /events` without a position tells it.
fn newest(server: &TestServer) -> i64 {
    page(server, "")["next"].as_i64().unwrap()
}

/// An event's type and its article's title: what identifies it in a test.
fn identity(event: &Value) -> (String, String) {
    (
        event["type"].as_str().unwrap().to_owned(),
        event["data"]["title"].as_str().unwrap().to_owned(),
    )
}

/// A stream frame's event JSON, checked against its `id:` and `event:`.
fn streamed(frame: &Frame) -> Value {
    let event = frame.json();
    assert_eq!(event["seq"].as_i64(), frame.seq(), "{frame:?}");
    assert_eq!(event["type"].as_str(), frame.event.as_deref(), "{frame:?}");
    event
}

/// Opens a stream and checks its head and first frame (`retry: 1000`).
fn follow(server: &TestServer, path: &str, headers: &[(&str, &str)]) -> Stream {
    let mut stream = Stream::open(server.addr, path, headers);
    assert_eq!(stream.head.status, 200, "{}", stream.head.text());
    assert_eq!(
        stream.head.header("Content-Type"),
        Some("text/event-stream")
    );
    assert_eq!(stream.head.header("Cache-Control"), Some("no-store"));
    assert_eq!(stream.head.header("Content-Length"), None);
    let first = stream.frame().expect("a first frame");
    assert_eq!(first.retry.as_deref(), Some("1000"), "{first:?}");
    stream
}

/// What one writer had acknowledged, in order: (type, title).
type Acked = Vec<(String, String)>;

/// `writers` threads (spread over `servers`) create, update and delete
/// their own articles at once, while a stream on the first server and a
/// JSON reader (small pages, long polls) on the last follow the feed. Both
/// must see exactly the acknowledged changes, each once, with `seq`
/// strictly increasing, and each writer's changes in the order it made
/// them. Returns how many changes were made.
pub(crate) fn follow_concurrent_writers(servers: &[&TestServer], writers: usize) -> usize {
    let mut rng = Rng::new(seed("follow_concurrent_writers"));
    let first = servers[0];
    let last = servers[servers.len() - 1];
    let start = newest(first);
    let mut stream = follow(first, "/events", &[]);
    let reader = {
        let addr = last.addr;
        let limit = rng.between(1, 9);
        thread::spawn(move || {
            let mut conn = Conn::open(addr);
            let mut after = start;
            let mut seen = Vec::new();
            loop {
                let path = format!("/events?after={after}&limit={limit}&wait=5");
                let resp = conn.request("GET", &path, &[], None);
                assert_eq!(resp.status, 200, "{}", resp.text());
                let page = resp.json();
                assert_ne!(page["reset"], true, "{page}");
                let events = events(&page).clone();
                after = page["next"].as_i64().unwrap();
                if let Some(last) = events.last() {
                    assert_eq!(last["seq"].as_i64(), Some(after), "next is the last event");
                }
                let done = events.iter().any(|e| e["data"]["title"] == "end");
                seen.extend(events);
                if done {
                    return seen;
                }
            }
        })
    };
    let streaming = thread::spawn(move || {
        let mut seen = Vec::new();
        while let Some(frame) = stream.event() {
            let event = streamed(&frame);
            let done = event["data"]["title"] == "end";
            seen.push(event);
            if done {
                return seen;
            }
        }
        panic!("the stream ended");
    });

    let go = Arc::new(Barrier::new(writers));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let addr = servers[w % servers.len()].addr;
            let mut rng = Rng::new(rng.next_u64());
            let go = Arc::clone(&go);
            thread::spawn(move || -> Acked {
                let mut conn = Conn::open(addr);
                let mut acked = Vec::new();
                // Each live article and its current title.
                let mut live: Vec<(i64, String)> = Vec::new();
                go.wait();
                for n in 0..30 {
                    let title = format!("w{w} n{n}");
                    let roll = rng.below(10);
                    if live.is_empty() || roll < 5 {
                        let resp = conn.create(&json!({"title": title, "content": "c"}));
                        assert_eq!(resp.status, 201, "{}", resp.text());
                        live.push((resp.json()["id"].as_i64().unwrap(), title.clone()));
                        acked.push(("article.created".into(), title));
                    } else if roll < 8 {
                        let i = rng.below(live.len() as u64) as usize;
                        let body = serde_json::to_vec(&json!({"title": title})).unwrap();
                        let path = format!("/articles/{}", live[i].0);
                        let json = [("Content-Type", "application/json")];
                        let resp = conn.request("PATCH", &path, &json, Some(&body));
                        assert_eq!(resp.status, 200, "{}", resp.text());
                        live[i].1 = title.clone();
                        acked.push(("article.updated".into(), title));
                    } else {
                        let i = rng.below(live.len() as u64) as usize;
                        let (id, title) = live.swap_remove(i);
                        let resp = conn.request("DELETE", &format!("/articles/{id}"), &[], None);
                        assert_eq!(resp.status, 204, "{}", resp.text());
                        acked.push(("article.deleted".into(), title));
                    }
                }
                acked
            })
        })
        .collect();
    let acked: Vec<Acked> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    last.create("end", "the last change", &[]);
    let streamed = streaming.join().unwrap();
    let read = reader.join().unwrap();

    let total = acked.iter().map(Vec::len).sum::<usize>() + 1;
    for (form, seen) in [("stream", &streamed), ("JSON", &read)] {
        let seqs: Vec<i64> = seen.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]) && seqs[0] > start,
            "{form}: seq not strictly increasing after {start}: {seqs:?}"
        );
        assert_eq!(seen.len(), total, "{form}: every change once");
        for (w, acked) in acked.iter().enumerate() {
            let prefix = format!("w{w} ");
            let mine: Acked = seen
                .iter()
                .map(identity)
                .filter(|(_, title)| title.starts_with(&prefix))
                .collect();
            assert_eq!(&mine, acked, "{form}: writer {w}'s changes, in its order");
        }
    }
    assert_eq!(streamed, read, "the stream and the pages agree");
    total
}

#[test]
fn every_acknowledged_change_reaches_a_stream_and_a_json_reader_once_in_order() {
    let server = TestServer::start();
    let changes = follow_concurrent_writers(&[&server], 4);
    assert_eq!(
        newest(&server),
        changes as i64,
        "SQLite: one seq per change"
    );
}

#[test]
fn an_event_is_the_webhook_body_with_its_seq() {
    let server = TestServer::start();
    let created = server.create("first", "c", &["rust"]);
    let id = created["id"].as_i64().unwrap();
    let resp = server.send_json(
        "PUT",
        &format!("/articles/{id}"),
        &[],
        &json!({
            "title": "second", "content": "d", "tags": ["go"]
        }),
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    let updated = resp.json();
    assert_eq!(
        server
            .request("DELETE", &format!("/articles/{id}"), &[], None)
            .status,
        204
    );

    let all = page(&server, "?after=0");
    assert_eq!(all["next"], 3);
    let events = events(&all);
    assert_eq!(seqs(&all), [1, 2, 3]);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["article.created", "article.updated", "article.deleted"]
    );
    assert_eq!(events[0]["data"], created);
    assert_eq!(events[0]["timestamp"], created["created_at"]);
    assert_eq!(events[1]["data"], updated);
    assert_eq!(events[1]["timestamp"], updated["updated_at"]);
    assert_eq!(
        events[2]["data"], updated,
        "a deletion carries the article as it was"
    );
    for event in events {
        let keys: BTreeSet<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        assert_eq!(keys, BTreeSet::from(["seq", "type", "timestamp", "data"]));
    }
    // The stream sends the same JSON, on one line.
    let mut stream = follow(&server, "/events?after=0", &[]);
    for expected in events {
        let frame = stream.event().unwrap();
        assert_eq!(&streamed(&frame), expected);
    }
}

#[test]
fn a_stream_starts_at_the_present_after_a_position_or_after_last_event_id() {
    let server = TestServer::start();
    for n in 1..=3 {
        server.create(&format!("old {n}"), "c", &[]);
    }
    let mut present = follow(&server, "/events", &[]);
    let mut after_one = follow(&server, "/events?after=1", &[]);
    // Last-Event-ID wins over `after`, as on an EventSource's reconnect.
    let mut resumed = follow(&server, "/events?after=0", &[("Last-Event-ID", "2")]);
    let mut beyond = follow(&server, "/events?after=4", &[]);
    server.create("new", "c", &[]);

    let titles = |stream: &mut Stream, count: usize| -> Vec<(i64, String)> {
        (0..count)
            .map(|_| {
                let event = streamed(&stream.event().unwrap());
                let title = event["data"]["title"].as_str().unwrap().to_owned();
                (event["seq"].as_i64().unwrap(), title)
            })
            .collect()
    };
    assert_eq!(titles(&mut present, 1), [(4, "new".into())]);
    assert_eq!(
        titles(&mut after_one, 3),
        [(2, "old 2".into()), (3, "old 3".into()), (4, "new".into())]
    );
    assert_eq!(
        titles(&mut resumed, 2),
        [(3, "old 3".into()), (4, "new".into())]
    );
    // A position beyond the newest waits for it, and sends nothing before.
    server.create("newer", "c", &[]);
    assert_eq!(titles(&mut beyond, 1), [(5, "newer".into())]);
    assert_eq!(titles(&mut present, 1), [(5, "newer".into())]);
}

#[test]
fn a_dropped_stream_resumes_with_last_event_id_without_a_gap_or_a_double() {
    let server = TestServer::start();
    server.create("one", "c", &[]);
    let mut stream = follow(&server, "/events?after=0", &[]);
    stream.event().unwrap();
    server.create("two", "c", &[]);
    stream.event().unwrap();
    let last = stream.last_id.unwrap().to_string();
    drop(stream);
    // Changes made while no one is connected.
    server.create("three", "c", &[]);
    server.create("four", "c", &[]);
    let mut stream = follow(&server, "/events", &[("Last-Event-ID", &last)]);
    let titles: Vec<Value> = (0..2)
        .map(|_| streamed(&stream.event().unwrap())["data"]["title"].clone())
        .collect();
    assert_eq!(titles, ["three", "four"]);
    assert_eq!(stream.last_id, Some(4));
}

#[test]
fn listing_then_following_from_events_seq_has_neither_gap_nor_double() {
    let server = TestServer::start();
    let empty = server.get("/articles");
    assert_eq!(empty.header("Events-Seq"), Some("0"));
    server.create("before", "c", &["t"]);
    let listed = server.get("/articles?tag=t&page=1&per_page=1");
    assert_eq!(listed.status, 200);
    let seq = listed.header("Events-Seq").unwrap().to_owned();
    assert_eq!(seq, "1");
    let mut stream = follow(&server, &format!("/events?after={seq}"), &[]);
    server.create("after", "c", &["t"]);
    let event = streamed(&stream.event().unwrap());
    assert_eq!(
        event["data"]["title"], "after",
        "not 'before' again, nothing missed"
    );
    let pages = page(&server, &format!("?after={seq}"));
    assert_eq!(seqs(&pages), [2]);
}

#[test]
fn the_json_form_pages_with_limit_and_long_polls_with_wait() {
    let server = TestServer::start();
    assert_eq!(page(&server, ""), json!({"events": [], "next": 0}));
    for n in 1..=5 {
        server.create(&format!("a{n}"), "c", &[]);
    }
    assert_eq!(
        page(&server, ""),
        json!({"events": [], "next": 5}),
        "to follow from now"
    );
    let first = page(&server, "?after=0&limit=2");
    assert_eq!(
        (seqs(&first), first["next"].clone()),
        (vec![1, 2], json!(2))
    );
    let rest = page(&server, "?after=2");
    assert_eq!(
        (seqs(&rest), rest["next"].clone()),
        (vec![3, 4, 5], json!(5))
    );
    let by_header = server.request("GET", "/events?limit=1", &[("Last-Event-ID", "3")], None);
    assert_eq!(seqs(&by_header.json()), [4]);
    let none = page(&server, "?after=5");
    assert_eq!(none, json!({"events": [], "next": 5}));

    // Nothing new: the long poll answers when `wait` is over.
    let started = Instant::now();
    assert_eq!(
        page(&server, "?after=5&wait=1"),
        json!({"events": [], "next": 5})
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    // A change commits meanwhile: the long poll answers at once with it.
    let addr = server.addr;
    let poll = thread::spawn(move || {
        let started = Instant::now();
        let resp = Conn::open(addr).request("GET", "/events?after=5&wait=30", &[], None);
        (resp.json(), started.elapsed())
    });
    thread::sleep(Duration::from_millis(300));
    server.create("a6", "c", &[]);
    let (answer, waited) = poll.join().unwrap();
    assert_eq!(seqs(&answer), [6]);
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[test]
fn bad_positions_limits_waits_and_types_are_422() {
    let server = TestServer::start();
    for query in [
        "?after=-1",
        "?after=x",
        "?after=1.5",
        "?after=99999999999999999999999",
        "?limit=0",
        "?limit=1001",
        "?wait=61",
        "?wait=-1",
        "?type=article.nope",
        "?type=article.created,",
    ] {
        for accept in ["application/json", "text/event-stream"] {
            let json_only = query.starts_with("?limit") || query.starts_with("?wait");
            if accept == "text/event-stream" && json_only {
                continue;
            }
            let resp = server.request(
                "GET",
                &format!("/events{query}"),
                &[("Accept", accept)],
                None,
            );
            assert_eq!(resp.status, 422, "{query} ({accept}): {}", resp.text());
            resp.problem(422);
        }
    }
    let resp = server.request("GET", "/events", &[("Last-Event-ID", "abc")], None);
    assert_eq!(resp.invalid_fields(), ["Last-Event-ID"]);
    // Last-Event-ID wins over `after`, but an invalid `after` is still a 422.
    for accept in ["application/json", "text/event-stream"] {
        let resp = server.request(
            "GET",
            "/events?after=9223372036854775808",
            &[("Last-Event-ID", "0"), ("Accept", accept)],
            None,
        );
        assert_eq!(resp.invalid_fields(), ["after"], "{accept}");
    }
    let resp = server.request("GET", "/events", &[("Authorization", "Bearer nope")], None);
    resp.assert_401();
}

#[test]
fn filters_select_by_tag_author_and_type_and_skipped_events_move_the_position() {
    let server = TestServer::start();
    let alice = server.add_user("alice");
    let auth = crate::support::bearer(&alice);
    let mut rust = follow(&server, "/events?tag=rust", &[]);
    let mut deletes = follow(&server, "/events?type=article.deleted,article.created", &[]);
    let mut by_alice = follow(&server, "/events?author=ALICE", &[]);

    let a = server.create("a", "c", &["rust"]); // 1
    let b = server.create("b", "c", &["go"]); // 2
    let resp = server.send_json(
        "POST",
        "/articles",
        &[("Authorization", &auth)],
        &json!({
            "title": "c", "content": "c", "tags": ["go"]
        }),
    ); // 3
    assert_eq!(resp.status, 201);
    // `a` leaves the tag: its follower learns of it.
    let patch = |id: &Value, body: Value| {
        let resp = server.send_json("PATCH", &format!("/articles/{id}"), &[], &body);
        assert_eq!(resp.status, 200, "{}", resp.text());
    };
    patch(&a["id"], json!({"tags": ["go"]})); // 4
    patch(&a["id"], json!({"title": "a2"})); // 5: no longer tagged rust
    assert_eq!(
        server
            .request("DELETE", &format!("/articles/{}", b["id"]), &[], None)
            .status,
        204
    ); // 6

    let seqs_of = |stream: &mut Stream| -> Vec<i64> {
        stream
            .events_through(6)
            .iter()
            .map(|f| streamed(f)["seq"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(seqs_of(&mut rust), [1, 4]);
    assert_eq!(seqs_of(&mut deletes), [1, 2, 3, 6]);
    assert_eq!(seqs_of(&mut by_alice), [3]);
    // The skipped events were told as a bare `id:`: a resume starts after 6.
    for stream in [&rust, &deletes, &by_alice] {
        assert_eq!(stream.last_id, Some(6));
    }

    // The JSON form: `next` moves past what did not match.
    let tagged = page(&server, "?after=0&tag=rust");
    assert_eq!(
        (seqs(&tagged), tagged["next"].clone()),
        (vec![1, 4], json!(6))
    );
    let limited = page(&server, "?after=0&tag=go&limit=2");
    assert_eq!(
        (seqs(&limited), limited["next"].clone()),
        (vec![2, 3], json!(3))
    );
    let typed = page(&server, "?after=0&type=article.updated");
    assert_eq!(seqs(&typed), [4, 5]);
    let nobody = page(&server, "?after=0&author=bob");
    assert_eq!(nobody, json!({"events": [], "next": 6}));
}

#[test]
fn a_position_older_than_what_is_kept_is_a_reset() {
    // 0.0003 hours is about a second; pruning runs every 5 s.
    let server = TestServer::start_with(&["--events-retention", "0.0003"]);
    server.create("one", "c", &[]);
    server.create("two", "c", &[]);
    // Positions that are still fine: the newest.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = page(&server, "?after=0");
        if answer["reset"] == true {
            assert_eq!(answer, json!({"events": [], "next": 2, "reset": true}));
            break;
        }
        assert_eq!(seqs(&answer), [1, 2], "kept until pruned");
        assert!(Instant::now() < deadline, "never pruned");
        thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(page(&server, "?after=2"), json!({"events": [], "next": 2}));
    let resp = server.request("GET", "/events?after=1", &[], None);
    assert_eq!(resp.json()["reset"], true, "after=1: event 2 is gone");

    let mut stream = follow(&server, "/events?after=0", &[]);
    let reset = stream.event().unwrap();
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert_eq!(reset.seq(), Some(2));
    assert_eq!(
        reset.json(),
        json!({"reset": true, "after": 0, "oldest": null, "next": 2})
    );
    server.create("three", "c", &[]);
    let next = streamed(&stream.event().unwrap());
    assert_eq!(
        (next["seq"].clone(), next["data"]["title"].clone()),
        (json!(3), json!("three"))
    );
    // Once kept, it is `oldest`.
    let resp = Stream::open(server.addr, "/events?after=0", &[])
        .event()
        .unwrap();
    assert_eq!(resp.json()["oldest"], 3);
}

#[test]
fn streams_past_max_streams_are_503_and_long_polls_do_not_count() {
    let server = TestServer::start_with(&["--max-streams", "2"]);
    let mut first = follow(&server, "/events", &[]);
    let second = follow(&server, "/events", &[]);
    server.await_metric("events_streams_open", 2.0);
    let refused = Stream::open(server.addr, "/events", &[]);
    refused.head.problem(503);
    assert!(refused.head.header("Retry-After").is_some());
    // A long poll is not a stream.
    let addr = server.addr;
    let poll = thread::spawn(move || {
        Conn::open(addr).request("GET", "/events?after=0&wait=10", &[], None)
    });
    thread::sleep(Duration::from_millis(200));
    server.create("one", "c", &[]);
    let polled = poll.join().unwrap();
    assert_eq!(seqs(&polled.json()), [1]);
    first.event().unwrap();
    server.await_metric("events_sent_total", 2.0);

    // A client that goes is noticed at the next write to it, and its slot
    // is free again.
    drop(second);
    server.create("two", "c", &[]);
    server.create("three", "c", &[]);
    server.await_metric("events_streams_open", 1.0);
    follow(&server, "/events", &[]);
}

#[test]
fn an_idle_stream_gets_keep_alives_and_outlives_the_idle_timeout() {
    let server = TestServer::start_with(&["--idle-timeout", "1"]);
    let mut stream = follow(&server, "/events", &[]);
    stream.timeout(Duration::from_secs(20));
    let started = Instant::now();
    let frame = stream.frame().expect("still open after the idle timeout");
    let waited = started.elapsed();
    assert_eq!(frame.comment.as_deref(), Some("keep-alive"), "{frame:?}");
    assert!(
        (Duration::from_secs(13)..Duration::from_secs(17)).contains(&waited),
        "keep-alive after {waited:?}"
    );
    server.create("still there", "c", &[]);
    let event = streamed(&stream.event().unwrap());
    assert_eq!(event["data"]["title"], "still there");
}

#[test]
fn metrics_and_cors_name_the_feed() {
    let server = TestServer::start_with(&["--cors-origin", "http://app.example"]);
    let resp = server.request(
        "GET",
        "/articles",
        &[("Origin", "http://app.example")],
        None,
    );
    let exposed = resp.header("Access-Control-Expose-Headers").unwrap();
    assert!(exposed.contains("Events-Seq"), "{exposed}");
    let metrics = server.get("/metrics").text();
    for series in ["events_streams_open 0", "events_sent_total 0"] {
        assert!(
            metrics.lines().any(|l| l == series),
            "{series} in {metrics}"
        );
    }
}

#[test]
fn a_json_page_of_large_events_stops_at_a_few_mib_and_next_goes_on() {
    let server = TestServer::start();
    let content = "x".repeat(900_000);
    for n in 1..=6 {
        server.create(&format!("big {n}"), &content, &[]);
    }
    let first = page(&server, "?after=0&limit=1000");
    let got = seqs(&first);
    assert!((1..6).contains(&got.len()), "{got:?}");
    assert_eq!(
        first["next"].as_i64(),
        got.last().copied(),
        "next is the last event sent"
    );
    let rest = page(&server, &format!("?after={}&limit=1000", first["next"]));
    let mut all = got.clone();
    all.extend(seqs(&rest));
    if all.len() < 6 {
        let last = page(&server, &format!("?after={}&limit=1000", rest["next"]));
        all.extend(seqs(&last));
    }
    assert_eq!(all, [1, 2, 3, 4, 5, 6]);
}
