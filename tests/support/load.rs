//! The clients of the load tests: readers that check every answer, and
//! writers that keep a ledger (see `ledger`), each on a connection of its
//! own.

use super::ledger::Writer;
use super::rng::Rng;
use super::server::{Kind, TestServer};
use super::wire::WireError;
use super::{bearer, Conn, Resp};

/// The contested article, made outside the ledgers: id 1.
pub const OTHERS: &[i64] = &[1];

/// What the readers saw.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub sent: u64,
    pub unavailable: u64,
    pub not_modified: u64,
    pub precondition_failed: u64,
    pub problems: Vec<String>,
}

impl ReadStats {
    fn merge(&mut self, other: ReadStats) {
        self.sent += other.sent;
        self.unavailable += other.unavailable;
        self.not_modified += other.not_modified;
        self.precondition_failed += other.precondition_failed;
        self.problems.extend(other.problems);
    }
}

/// One reader's view of the server: a connection, a token for `/me`, and the
/// largest article id worth asking for.
pub struct Reader {
    rng: Rng,
    token: String,
    username: String,
    pub stats: ReadStats,
}

impl Reader {
    /// Sends one random read (or a contested conditional write) and checks
    /// the answer.
    pub fn step(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        self.stats.sent += 1;
        match self.rng.below(10) {
            0..=3 => self.list(conn),
            4..=6 => self.show(conn),
            7 => self.contend(conn),
            8 => {
                let auth = bearer(&self.token);
                let resp = conn.try_request("GET", "/me", &[("Authorization", &auth)], None)?;
                self.expect(&resp, &[200], "/me");
                if resp.status == 200 && resp.json()["username"] != self.username.as_str() {
                    self.stats.problems.push(format!("/me: {}", resp.text()));
                }
                Ok(())
            }
            _ => {
                let path = *self
                    .rng
                    .pick(&["/healthz", "/readyz", "/metrics", "/openapi.json"]);
                let method = *self.rng.pick(&["GET", "HEAD", "OPTIONS"]);
                let resp = conn.try_request(method, path, &[], None)?;
                let ok: &[u16] = if method == "OPTIONS" { &[204] } else { &[200] };
                self.expect(&resp, ok, path);
                Ok(())
            }
        }
    }

    /// A listing with random filters: 200, at most `per_page` articles,
    /// `X-Total-Count` and `Link`.
    fn list(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let mut query = vec![format!("per_page={}", self.rng.between(1, 100))];
        query.push(format!("page={}", self.rng.between(1, 4)));
        if self.rng.chance(30) {
            query.push(format!(
                "tag={}",
                self.rng.pick(&["alpha", "rust", "sql", "none"])
            ));
        }
        if self.rng.chance(20) {
            query.push(format!(
                "author={}",
                self.rng.pick(&[self.username.as_str(), "nobody"])
            ));
        }
        if self.rng.chance(30) {
            let q = *self
                .rng
                .pick(&["lorem", "ipsum+dolor", "w1", "%22x%22+OR+*", "NEAR(a)"]);
            query.push(format!("q={q}"));
        }
        if self.rng.chance(40) {
            let sort = *self
                .rng
                .pick(&["created_at", "-updated_at", "title", "-title"]);
            query.push(format!("sort={sort}"));
        }
        let path = format!("/articles?{}", query.join("&"));
        let resp = conn.try_request("GET", &path, &[], None)?;
        if self.expect(&resp, &[200], &path) && resp.status == 200 {
            let per_page: usize = query[0][9..].parse().unwrap();
            let items = resp.json().as_array().map_or(usize::MAX, Vec::len);
            let total = resp
                .header("X-Total-Count")
                .and_then(|t| t.parse::<u64>().ok());
            if items > per_page || total.is_none() || resp.header("Link").is_none() {
                self.stats
                    .problems
                    .push(format!("{path}: {:?}", resp.headers));
            }
        }
        Ok(())
    }

    /// GET or HEAD of a random article, then a conditional GET with its ETag.
    fn show(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let path = format!("/articles/{}", self.rng.between(1, 400));
        let method = if self.rng.chance(20) { "HEAD" } else { "GET" };
        let resp = conn.try_request(method, &path, &[], None)?;
        if !self.expect(&resp, &[200, 404], &path) || resp.status != 200 {
            return Ok(());
        }
        let Some(etag) = resp.header("ETag").map(str::to_owned) else {
            self.stats.problems.push(format!("{path}: no ETag"));
            return Ok(());
        };
        self.stats.sent += 1;
        let again = conn.try_request("GET", &path, &[("If-None-Match", &etag)], None)?;
        // 200: it changed meanwhile; 404: it was deleted meanwhile.
        if self.expect(&again, &[304, 200, 404], &path) && again.status == 304 {
            self.stats.not_modified += 1;
        }
        Ok(())
    }

    /// Optimistic concurrency on the one article every reader fights over:
    /// read its ETag, PATCH with `If-Match`: 200 or 412, nothing else.
    fn contend(&mut self, conn: &mut Conn) -> Result<(), WireError> {
        let resp = conn.try_request("GET", "/articles/1", &[], None)?;
        if !self.expect(&resp, &[200], "/articles/1") || resp.status != 200 {
            return Ok(());
        }
        let etag = resp.header("ETag").unwrap_or("\"none\"").to_owned();
        let body = format!("{{\"content\": \"won by {}\"}}", self.rng.next_u64());
        let headers = [("Content-Type", "application/json"), ("If-Match", &etag)];
        self.stats.sent += 1;
        let resp = conn.try_request("PATCH", "/articles/1", &headers, Some(body.as_bytes()))?;
        if self.expect(&resp, &[200, 412], "PATCH /articles/1") && resp.status == 412 {
            self.stats.precondition_failed += 1;
        }
        Ok(())
    }

    /// Whether `resp` has one of the `ok` statuses; 503 with `Retry-After`
    /// is counted and tolerated, anything else recorded as a problem.
    fn expect(&mut self, resp: &Resp, ok: &[u16], what: &str) -> bool {
        if ok.contains(&resp.status) {
            return true;
        }
        if resp.status == 503 && resp.header("Retry-After").is_some() {
            self.stats.unavailable += 1;
        } else {
            let text = resp.text();
            let text = &text[..text.len().min(300)];
            self.stats
                .problems
                .push(format!("{what}: {} {text}", resp.status));
        }
        false
    }
}

/// Makes `count` readers, each with its own user and token.
pub fn readers<K: Kind>(server: &TestServer<K>, seed: u64, count: u64) -> Vec<Reader> {
    (0..count)
        .map(|n| {
            let username = format!("reader{n}");
            Reader {
                rng: Rng::new(seed.wrapping_mul(31).wrapping_add(n)),
                token: server.add_user(&username),
                username,
                stats: ReadStats::default(),
            }
        })
        .collect()
}

/// Writers, a third of them with a token.
pub fn writers<K: Kind>(server: &TestServer<K>, seed: u64, count: u64) -> Vec<Writer> {
    (0..count)
        .map(|n| {
            let token = (n % 3 == 2).then(|| server.add_user(&format!("writer{n}")));
            Writer::new(&format!("w{n}"), seed.wrapping_add(n), token)
        })
        .collect()
}

/// The readers' stats, merged, once every client is checked to have seen
/// no problem.
pub fn checked_stats(readers: Vec<Reader>, writers: &[Writer]) -> ReadStats {
    let mut reads = ReadStats::default();
    for reader in readers {
        reads.merge(reader.stats);
    }
    assert!(reads.problems.is_empty(), "{:#?}", reads.problems);
    for writer in writers {
        let problems = &writer.stats.problems;
        assert!(problems.is_empty(), "{}: {problems:#?}", writer.name);
    }
    reads
}
