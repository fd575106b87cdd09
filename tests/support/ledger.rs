//! A ledger of acknowledged writes. Each `Writer` creates, replaces, patches
//! and deletes its own articles over one keep-alive connection and records
//! what the server acknowledged (201, 200, 204), plus the one request whose
//! answer never came. `verify` then checks a server's articles against the
//! ledgers: every acknowledged state present and exact, the unanswered
//! request applied or not (never half), nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde_json::{json, Value};

use super::rng::Rng;
use super::wire::WireError;
use super::{bearer, Conn, Resp};

const TAGS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "rust", "sql"];

/// What one writer has seen.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Requests sent.
    pub sent: u64,
    /// Writes acknowledged (201, 200, 204).
    pub acknowledged: u64,
    /// Acknowledged creations and deletions.
    pub creates: u64,
    pub deletes: u64,
    /// 503 answers with `Retry-After` (the write was not made).
    pub unavailable: u64,
    /// Anything that should not happen: another 5xx, an unexpected status,
    /// a response cut short or malformed.
    pub problems: Vec<String>,
}

/// A write sent whose answer never came: it may or may not have applied.
#[derive(Debug, Clone)]
enum Pending {
    Create {
        title: String,
        body: Vec<u8>,
        key: Option<String>,
    },
    Update {
        id: i64,
        fields: Value,
    },
    Delete {
        id: i64,
    },
}

/// A request to send, and what it will have done if acknowledged.
struct Op {
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
    pending: Pending,
}

/// One client writing its own articles.
pub struct Writer {
    pub name: String,
    rng: Rng,
    seq: u64,
    token: Option<String>,
    live: BTreeMap<i64, Value>,
    etags: BTreeMap<i64, String>,
    deleted: BTreeSet<i64>,
    pending: Option<Pending>,
    pub stats: Stats,
}

impl Writer {
    /// A writer named `name` (titles start with it), anonymous or with a token.
    pub fn new(name: &str, seed: u64, token: Option<String>) -> Writer {
        Writer {
            name: name.to_owned(),
            rng: Rng::new(seed),
            seq: 0,
            token,
            live: BTreeMap::new(),
            etags: BTreeMap::new(),
            deleted: BTreeSet::new(),
            pending: None,
            stats: Stats::default(),
        }
    }

    /// Sends one write on `conn` and records its outcome. An error means the
    /// connection ended or the answer was cut short; the write stays pending
    /// (it may have applied).
    pub fn step(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let op = self.next_op();
        self.pending = Some(op.pending.clone());
        self.stats.sent += 1;
        let mut headers: Vec<(&str, &str)> =
            op.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let auth = self.token.as_deref().map(bearer);
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        match conn.try_request(op.method, &op.path, &headers, op.body.as_deref()) {
            Ok(resp) => {
                self.settle(op.pending, &resp);
                Ok(())
            }
            // Whether a response cut short is acceptable is the caller's
            // call: after SIGKILL it is, after SIGTERM it is not.
            Err(err) => Err(err),
        }
    }

    fn next_op(&mut self) -> Op {
        self.seq += 1;
        let target = (!self.live.is_empty() && !self.rng.chance(35)).then(|| {
            let ids: Vec<i64> = self.live.keys().copied().collect();
            *self.rng.pick(&ids)
        });
        let Some(id) = target else {
            return self.create_op();
        };
        let path = format!("/articles/{id}");
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        if let Some(tag) = self.etags.get(&id).filter(|_| self.rng.chance(50)) {
            headers.push(("If-Match", tag.clone()));
        }
        let roll = self.rng.below(10);
        if roll == 0 {
            return Op {
                method: "DELETE",
                path,
                body: None,
                headers,
                pending: Pending::Delete { id },
            };
        }
        let full = self.fields("u");
        let (method, sent) = if roll < 4 {
            ("PUT", full.clone())
        } else {
            ("PATCH", self.some_of(&full))
        };
        let mut fields = self.live[&id].clone();
        for (name, value) in sent.as_object().unwrap() {
            fields[name] = value.clone();
        }
        Op {
            method,
            path,
            body: Some(serde_json::to_vec(&sent).unwrap()),
            headers,
            pending: Pending::Update { id, fields },
        }
    }

    fn create_op(&mut self) -> Op {
        let fields = self.fields("c");
        let title = fields["title"].as_str().unwrap().to_owned();
        let body = serde_json::to_vec(&fields).unwrap();
        let mut headers = vec![("Content-Type", "application/json".to_owned())];
        let key = self.rng.chance(50).then(|| format!("key-{title}"));
        if let Some(key) = &key {
            headers.push(("Idempotency-Key", key.clone()));
        }
        Op {
            method: "POST",
            path: "/articles".into(),
            body: Some(body.clone()),
            headers,
            pending: Pending::Create { title, body, key },
        }
    }

    /// A full set of fields with a title unique to this write.
    fn fields(&mut self, kind: &str) -> Value {
        let title = format!("{}-{kind}{}", self.name, self.seq);
        let size = match self.rng.below(20) {
            0 => self.rng.between(20_000, 60_000),
            1..=3 => self.rng.between(1_000, 5_000),
            _ => self.rng.between(20, 300),
        };
        let mut content = format!("{title} ");
        while content.len() < size as usize {
            const WORDS: [&str; 5] = ["lorem ", "ipsum ", "dolor ", "sit ", "amet "];
            let word = *self.rng.pick(&WORDS[..]);
            content.push_str(word);
        }
        let tags: BTreeSet<&str> = (0..self.rng.below(4))
            .map(|_| *self.rng.pick(&TAGS))
            .collect();
        json!({"title": title, "content": content, "tags": tags})
    }

    /// A non-empty subset of `full`, for a PATCH.
    fn some_of(&mut self, full: &Value) -> Value {
        let mut out = serde_json::Map::new();
        for (name, value) in full.as_object().unwrap() {
            if self.rng.chance(50) {
                out.insert(name.clone(), value.clone());
            }
        }
        if out.is_empty() {
            out.insert("title".into(), full["title"].clone());
        }
        Value::Object(out)
    }

    /// Records the answer to `pending`.
    fn settle(&mut self, pending: Pending, resp: &Resp) {
        self.pending = None;
        let expected = match pending {
            Pending::Create { .. } => 201,
            Pending::Update { .. } => 200,
            Pending::Delete { .. } => 204,
        };
        if resp.status == 503 && resp.header("Retry-After").is_some() {
            self.stats.unavailable += 1;
            return;
        }
        if resp.status != expected {
            let what = format!("{pending:?}: {} {}", resp.status, resp.text());
            self.stats.problems.push(what);
            return;
        }
        self.stats.acknowledged += 1;
        match pending {
            Pending::Create { title, .. } => {
                let article = resp.json();
                if article["title"] != title.as_str() {
                    self.stats.problems.push(format!("created {article}"));
                }
                self.stats.creates += 1;
                self.remember(&article, resp.header("ETag"));
            }
            Pending::Update { fields, .. } => {
                let article = resp.json();
                if !same_fields(&article, &fields) {
                    self.stats.problems.push(format!("updated {article}"));
                }
                self.remember(&article, resp.header("ETag"));
            }
            Pending::Delete { id } => {
                self.stats.deletes += 1;
                self.live.remove(&id);
                self.etags.remove(&id);
                self.deleted.insert(id);
            }
        }
    }

    fn remember(&mut self, article: &Value, etag: Option<&str>) {
        let id = article["id"].as_i64().unwrap();
        self.live.insert(id, article.clone());
        match etag {
            Some(tag) => self.etags.insert(id, tag.to_owned()),
            None => self.etags.remove(&id),
        };
    }
}

/// Whether `article` has the title, content and tags of `fields`.
fn same_fields(article: &Value, fields: &Value) -> bool {
    ["title", "content", "tags"]
        .iter()
        .all(|name| article[name] == fields[name])
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Acknowledged states compared with the database.
    pub checked: usize,
    /// Acknowledged writes missing or different: must be 0.
    pub lost: usize,
    /// Unanswered writes that turned out to have applied.
    pub applied_in_flight: usize,
    /// Every discrepancy, described.
    pub problems: Vec<String>,
}

/// Checks the articles of the server at `addr` against every ledger, and
/// resolves each unanswered write to what the server has (so the ledgers
/// are exact again for another round). An unanswered keyed creation is
/// retried with its `Idempotency-Key`: it must then exist exactly once.
/// `others`: ids of articles made outside the ledgers.
pub fn verify(addr: SocketAddr, writers: &mut [Writer], others: &[i64]) -> Verdict {
    let mut verdict = Verdict::default();
    let all = fetch_all(addr);
    let mut known: BTreeSet<i64> = others.iter().copied().collect();
    for writer in writers.iter_mut() {
        known.extend(writer.live.keys());
        known.extend(writer.deleted.iter());
        writer.check(&all, &mut verdict);
    }
    for writer in writers.iter_mut() {
        if let Some(id) = writer.resolve_create(addr, &all, &known, &mut verdict) {
            known.insert(id);
        }
    }
    for (id, article) in &all {
        if !known.contains(id) {
            verdict.problems.push(format!("phantom article {article}"));
        }
    }
    verdict
}

impl Writer {
    /// Compares acknowledged states and resolves a pending update or delete.
    fn check(&mut self, all: &BTreeMap<i64, Value>, verdict: &mut Verdict) {
        let (pending_id, fields) = match &self.pending {
            Some(Pending::Update { id, fields }) => (Some(*id), Some(fields.clone())),
            Some(Pending::Delete { id }) => (Some(*id), None),
            _ => (None, None),
        };
        for (id, acknowledged) in &self.live {
            verdict.checked += 1;
            let actual = all.get(id);
            if actual == Some(acknowledged) {
                continue;
            }
            let in_flight = Some(*id) == pending_id
                && match (&fields, actual) {
                    (Some(fields), Some(actual)) => {
                        same_fields(actual, fields)
                            && actual["created_at"] == acknowledged["created_at"]
                            && actual["updated_at"].as_str() > acknowledged["updated_at"].as_str()
                    }
                    (None, None) => true,
                    _ => false,
                };
            if in_flight {
                verdict.applied_in_flight += 1;
            } else {
                verdict.lost += 1;
                let found = actual.map_or("nothing".to_owned(), Value::to_string);
                verdict.problems.push(format!(
                    "{}: acknowledged {acknowledged}, found {found}",
                    self.name
                ));
            }
        }
        for id in &self.deleted {
            verdict.checked += 1;
            if let Some(article) = all.get(id) {
                verdict.lost += 1;
                verdict
                    .problems
                    .push(format!("{}: deleted {id} is back: {article}", self.name));
            }
        }
        if let Some(id) = pending_id {
            self.pending = None;
            self.etags.remove(&id);
            match all.get(&id) {
                Some(article) => {
                    self.live.insert(id, article.clone());
                }
                None => {
                    self.live.remove(&id);
                    self.deleted.insert(id);
                }
            }
        }
    }

    /// Resolves a pending creation: found once or not at all; a keyed one is
    /// retried and must then exist exactly once. Returns the id it has.
    fn resolve_create(
        &mut self,
        addr: SocketAddr,
        all: &BTreeMap<i64, Value>,
        known: &BTreeSet<i64>,
        verdict: &mut Verdict,
    ) -> Option<i64> {
        let Some(Pending::Create { title, body, key }) = self.pending.take() else {
            return None;
        };
        let found: Vec<&Value> = all
            .iter()
            .filter(|(id, a)| !known.contains(id) && a["title"] == title.as_str())
            .map(|(_, a)| a)
            .collect();
        if found.len() > 1 {
            verdict.problems.push(format!("{title} created twice"));
        }
        let mut article = found.first().map(|a| (*a).clone());
        if article.is_some() {
            verdict.applied_in_flight += 1;
        }
        if let Some(key) = key {
            let retried = self.retry_create(addr, &body, &key);
            match (&article, retried) {
                (Some(first), Some(again)) if first["id"] == again["id"] => {}
                (None, Some(again)) => article = Some(again),
                (_, other) => verdict.problems.push(format!(
                    "{title}: retry with its key gave {other:?}, first {article:?}"
                )),
            }
        }
        let article = article?;
        let id = article["id"].as_i64().unwrap();
        self.live.insert(id, article);
        Some(id)
    }

    /// The article a retried keyed creation answers with (201 either way).
    fn retry_create(&self, addr: SocketAddr, body: &[u8], key: &str) -> Option<Value> {
        let auth = self.token.as_deref().map(bearer);
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let resp = Conn::open(addr).request("POST", "/articles", &headers, Some(body));
        (resp.status == 201).then(|| resp.json())
    }
}

/// Every article on the server, by id, read page by page.
pub fn fetch_all(addr: SocketAddr) -> BTreeMap<i64, Value> {
    let mut conn = Conn::open(addr);
    let mut all = BTreeMap::new();
    for page in 1.. {
        let path = format!("/articles?per_page=100&sort=created_at&page={page}");
        let resp = conn.request("GET", &path, &[], None);
        assert_eq!(resp.status, 200, "{}", resp.text());
        let items = resp.json().as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        for item in items {
            all.insert(item["id"].as_i64().unwrap(), item);
        }
    }
    all
}
