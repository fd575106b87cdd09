//! The request-head reader of the patched tiny_http_fork against an oracle:
//! random heads, made of the pieces the reader treats specially, must get
//! the same verdict from both, the same status when refused and the same
//! method, target, version and headers when accepted. The reader is fed
//! through buffers of random sizes, so that lines cross buffer ends the way
//! they cross TCP segments; the oracle sees the whole head at once and is
//! written from the contract, line by line, not from the reader's code.
//!
//! - `FUZZ_CASES` and `RELIABILITY_SEED` as for the other properties.

use std::io::BufReader;
use std::time::Duration;

use tiny_http_fork::{parse_head, Limits};

use super::rng::{self, Rng};

/// A head as both sides read it: method, target, (major, minor), headers.
type Parsed = (String, String, (u8, u8), Vec<(String, String)>);

/// The contract's grammar, read line by line from the whole head.
fn oracle(bytes: &[u8], limits: &Limits) -> Result<Parsed, u16> {
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    let mut used = 0;
    let mut rest = bytes;
    let mut request: Option<(String, String, (u8, u8))> = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let max = match request {
            None => limits.request_line,
            Some(_) => limits.head_bytes,
        };
        let too_long = if request.is_none() { 414 } else { 431 };
        // A line may take its content, CR and LF (max + 2 bytes), within
        // what is left of the head; past either, the first limit crossed
        // (in byte order) refuses it.
        let (line_room, head_room) = (max + 2, limits.head_bytes - used);
        let room = line_room.min(head_room);
        let crossed = if line_room <= head_room {
            too_long
        } else {
            431
        };
        let end = rest.iter().position(|b| *b == b'\n');
        let length = end.map_or(rest.len(), |end| end + 1);
        if length > room {
            return Err(crossed);
        }
        let Some(end) = end else {
            return Err(400);
        };
        let raw = &rest[..=end];
        used += raw.len();
        rest = &rest[end + 1..];
        let Some(line) = raw.strip_suffix(b"\r\n") else {
            return Err(400);
        };
        if line.contains(&b'\r') {
            return Err(400);
        }
        match &request {
            None if line.is_empty() => continue,
            None => {
                let parts: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
                let [method, target, version] = parts[..] else {
                    return Err(400);
                };
                let version = match version {
                    [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
                        if major.is_ascii_digit() && minor.is_ascii_digit() =>
                    {
                        (major - b'0', minor - b'0')
                    }
                    _ => return Err(400),
                };
                if version.0 != 1 {
                    return Err(505);
                }
                if method.is_empty() || !method.iter().all(tchar) {
                    return Err(400);
                }
                if target.is_empty() || !target.iter().all(|b| (0x21..0x7f).contains(b)) {
                    return Err(400);
                }
                let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).unwrap();
                request = Some((text(method), text(target), version));
            }
            Some(_) if line.is_empty() => break,
            Some(_) => {
                if headers.len() == limits.header_lines {
                    return Err(431);
                }
                if line[0] == b' ' || line[0] == b'\t' {
                    return Err(400);
                }
                let colon = line.iter().position(|b| *b == b':').ok_or(400u16)?;
                let name = &line[..colon];
                if name.is_empty() || !name.iter().all(tchar) {
                    return Err(400);
                }
                let value = line[colon + 1..]
                    .iter()
                    .copied()
                    .skip_while(|b| *b == b' ' || *b == b'\t')
                    .collect::<Vec<u8>>();
                let trailing = value
                    .iter()
                    .rev()
                    .take_while(|b| **b == b' ' || **b == b'\t')
                    .count();
                let value = &value[..value.len() - trailing];
                if value
                    .iter()
                    .any(|b| (*b < 0x20 && *b != b'\t') || *b == 0x7f)
                {
                    return Err(400);
                }
                let value = match std::str::from_utf8(value) {
                    Ok(text) => text.to_owned(),
                    Err(_) => value.iter().map(|b| char::from(*b)).collect(),
                };
                headers.push((String::from_utf8(name.to_vec()).unwrap(), value));
            }
        }
    }
    fn named<'h>(
        headers: &'h [(String, String)],
        name: &'h str,
    ) -> impl Iterator<Item = &'h (String, String)> {
        headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
    }
    if named(&headers, "Host").count() > 1 {
        return Err(400);
    }
    let mut lengths = Vec::new();
    for (_, value) in named(&headers, "Content-Length") {
        for part in value.split(',') {
            let part = part.trim_matches([' ', '\t']);
            match part.parse::<u64>() {
                Ok(n) if part.bytes().all(|b| b.is_ascii_digit()) => lengths.push(n),
                _ => return Err(400),
            }
        }
    }
    if lengths.windows(2).any(|w| w[0] != w[1]) {
        return Err(400);
    }
    if !lengths.is_empty() && named(&headers, "Transfer-Encoding").count() > 0 {
        return Err(400);
    }
    let folded = named(&headers, "Content-Length").count() > 1
        || named(&headers, "Content-Length").any(|(_, v)| v.contains(','));
    if folded {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("Content-Length"));
        headers.push(("Content-Length".into(), lengths[0].to_string()));
    }
    let (method, target, version) = request.expect("read above");
    Ok((method, target, version, headers))
}

/// The patched reader, through a buffer of `chunk` bytes.
fn reader(bytes: &[u8], limits: &Limits, chunk: usize) -> Result<Parsed, u16> {
    let mut source = BufReader::with_capacity(chunk, bytes);
    parse_head(&mut source, limits)
        .map(|(method, target, version, headers)| {
            (
                method.as_str().to_owned(),
                target,
                (version.0, version.1),
                headers,
            )
        })
        .map_err(|refusal| refusal.status)
}

/// Each piece of a head: usual values, then ones the reader must refuse or
/// treat specially. A head takes a usual one most of the time.
const METHODS: (&[&str], &[&str]) = (
    &["GET", "POST", "PATCH", "X-Y!"],
    &["G T", "GE\x01T", "", "PRI"],
);
const TARGETS: (&[&str], &[&str]) = (
    &["/", "/articles?q=a+b", "*", "/articles/1"],
    &["/a b", "/\x7f", "/caf\u{e9}", ""],
);
const VERSIONS: (&[&str], &[&str]) = (
    &["HTTP/1.1", "HTTP/1.0", "HTTP/1.9"],
    &[
        "HTTP/2.0",
        "HTTP/3.0",
        "HTTP/0.9",
        "HTTP/11",
        "http/1.1",
        "HTTP/1.1 ",
    ],
);
const NAMES: (&[&str], &[&str]) = (
    &[
        "Host",
        "Content-Length",
        "content-length",
        "Transfer-Encoding",
        "If-Match",
        "X!#$%&'*+.^`|~",
    ],
    &["X A", "X-A ", " X-A", "\tX", "X\x00", "", "X:Y"],
);
const VALUES: (&[&str], &[&str]) = (
    &[
        "1",
        "0",
        "2",
        "2, 2",
        " 02 ",
        "chunked",
        "a\tb",
        "\t",
        "caf\u{e9}",
        "\"x\", \"y\"",
        "",
    ],
    &["2,3", "+2", "a\x01b", "a\x7fb"],
);
const ENDS: (&[&str], &[&str]) = (&["\r\n"], &["\n", "\r", "\r\r\n"]);

/// A usual piece nine times in ten, else an unusual one.
fn piece<'a>(rng: &mut Rng, (usual, unusual): (&[&'a str], &[&'a str])) -> &'a str {
    let pieces = if rng.chance(90) { usual } else { unusual };
    pieces[rng.below(pieces.len() as u64) as usize]
}

/// A random head: mostly well formed, with a defect here and there.
fn random_head(rng: &mut Rng) -> Vec<u8> {
    let mut head = String::new();
    if rng.chance(5) {
        head.push_str("\r\n");
    }
    let long = |rng: &mut Rng| "a".repeat(rng.between(1, 200) as usize);
    let method = piece(rng, METHODS);
    let target = match rng.chance(5) {
        true => format!("/{}", long(rng)),
        false => piece(rng, TARGETS).to_owned(),
    };
    head.push_str(&format!("{method} {target} {}", piece(rng, VERSIONS)));
    head.push_str(piece(rng, ENDS));
    for _ in 0..rng.below(6) {
        let value = match rng.chance(5) {
            true => long(rng),
            false => piece(rng, VALUES).to_owned(),
        };
        let space = if rng.chance(80) { " " } else { "" };
        head.push_str(&format!("{}:{space}{value}", piece(rng, NAMES)));
        head.push_str(piece(rng, ENDS));
    }
    if rng.chance(95) {
        head.push_str("\r\n");
    }
    let mut bytes = head.into_bytes();
    if rng.chance(5) {
        // A lone obs-text byte: not UTF-8.
        let at = rng.below(bytes.len() as u64 + 1) as usize;
        bytes.insert(at, 0xe9);
    }
    bytes
}

#[test]
fn the_head_reader_agrees_with_the_contract() {
    let seed = rng::seed("head");
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000 * rng::scale());
    let mut rng = Rng::new(seed);
    let (mut accepted, mut refused) = (0, 0);
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..cases {
        let limits = Limits {
            request_line: rng.between(16, 240) as usize,
            head_bytes: rng.between(64, 900) as usize,
            header_lines: rng.between(1, 9) as usize,
            head_time: Duration::from_secs(10),
        };
        let head = random_head(&mut rng);
        let chunk = rng.between(1, 80) as usize;
        let expected = oracle(&head, &limits);
        let got = reader(&head, &limits, chunk);
        assert_eq!(
            got,
            expected,
            "head {:?} with {limits:?}, read {chunk} bytes at a time",
            String::from_utf8_lossy(&head)
        );
        match got {
            Ok(_) => accepted += 1,
            Err(status) => {
                refused += 1;
                *statuses.entry(status).or_insert(0) += 1;
            }
        }
    }
    println!("heads: {cases} cases, {accepted} accepted, refused by status {statuses:?}");
    // Both outcomes must be common, or the generator tests nothing.
    assert!(
        accepted * 20 > cases && refused * 20 > cases,
        "{accepted} accepted, {refused} refused"
    );
}
