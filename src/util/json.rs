//! JSON written by hand for the replies on the hot path (an article, a page
//! of articles), byte for byte what `serde_json` writes.
//!
//! serde_json checks a string for characters to escape one byte at a time
//! and writes each key and punctuation mark through `io::Write`: on
//! `GET /articles/{id}` that was 15 % of the instructions, most of it
//! the scan of ~500 characters of content. Here the scan takes eight bytes
//! at a time. Everything else still goes through serde_json.
//!
//! `push_int` also writes the numbers of an `ETag`, an access line and a
//! response's head, where `format!` cost hundreds of instructions each.

/// Appends `text` as a JSON string: quoted, with `"`, `\` and control
/// characters escaped as serde_json escapes them. Everything else,
/// non-ASCII included, is copied as it is.
pub fn push_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `bytes[copied..at]` needs no escape and is not yet in `out`.
    let (mut copied, mut at) = (0, 0);
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !may_need_escape(word) {
                at += 8;
                continue;
            }
        }
        if let Some(escape) = escape(bytes[at]) {
            out.extend_from_slice(&bytes[copied..at]);
            escape.write(out);
            copied = at + 1;
        }
        at += 1;
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Appends `n` in decimal.
pub fn push_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = n.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

const ONES: u64 = u64::from_ne_bytes([1; 8]);
const HIGH_BITS: u64 = ONES * 0x80;

/// Whether any of the eight bytes in `word` may be `"`, `\` or below 0x20.
/// Never false when one is (a false alarm would only send these bytes down
/// the one-at-a-time path).
fn may_need_escape(word: u64) -> bool {
    // (x - 0x01…) & !x & 0x80… is non-zero iff some byte of x is below 1
    // (zero); with 0x20… in place of 0x01…, iff some byte is below 0x20.
    let below = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH_BITS;
    let control = below(word, 0x20);
    let quote = below(word ^ (ONES * u64::from(b'"')), 1);
    let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
    (control | quote | backslash) != 0
}

/// How one byte is escaped, if it is.
enum Escape {
    /// A two-character escape such as `\n`.
    Short(u8),
    /// `\u00XX`, for the other control characters.
    Unicode(u8),
}

impl Escape {
    fn write(&self, out: &mut Vec<u8>) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        match *self {
            Escape::Short(c) => out.extend_from_slice(&[b'\\', c]),
            Escape::Unicode(b) => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]),
        }
    }
}

fn escape(byte: u8) -> Option<Escape> {
    Some(match byte {
        b'"' => Escape::Short(b'"'),
        b'\\' => Escape::Short(b'\\'),
        0x08 => Escape::Short(b'b'),
        0x0c => Escape::Short(b'f'),
        b'\n' => Escape::Short(b'n'),
        b'\r' => Escape::Short(b'r'),
        b'\t' => Escape::Short(b't'),
        0x00..=0x1f => Escape::Unicode(byte),
        _ => return None,
    })
}

/// The bytes of a JSON text without the whitespace between its tokens.
/// Both halves run at compile time: `minified_len` sizes the array that
/// `minify` fills, so a document embedded pretty-printed (readable in the
/// repository) is stored in the binary at its smallest.
pub const fn minified_len(json: &[u8]) -> usize {
    minify_into(json, &mut [])
}

/// `json` without its insignificant whitespace; `N` is `minified_len(json)`.
pub const fn minify<const N: usize>(json: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    minify_into(json, &mut out);
    out
}

/// Writes the bytes `minify` keeps into `out`, as many as fit, and returns
/// how many it keeps.
const fn minify_into(json: &[u8], out: &mut [u8]) -> usize {
    let mut scan = Scan::new();
    let (mut i, mut kept) = (0, 0);
    while i < json.len() {
        if scan.keeps(json[i]) {
            if kept < out.len() {
                out[kept] = json[i];
            }
            kept += 1;
        }
        i += 1;
    }
    kept
}

/// Where a byte-by-byte walk through a JSON text is: in a string or not,
/// and after a backslash in one.
struct Scan {
    in_string: bool,
    escaped: bool,
}

impl Scan {
    const fn new() -> Scan {
        Scan {
            in_string: false,
            escaped: false,
        }
    }

    /// Whether `byte`, the next one, belongs in the minified text.
    const fn keeps(&mut self, byte: u8) -> bool {
        if self.in_string {
            match (self.escaped, byte) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return true;
        }
        match byte {
            b'"' => {
                self.in_string = true;
                true
            }
            b' ' | b'\t' | b'\n' | b'\r' => false,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_drops_whitespace_between_tokens_only() {
        const PRETTY: &[u8] = b"{\n  \"a b\": [1, 2],\n\t\"c\": \"x \\\" y\\\\\", \"d\": {}\r\n}";
        const MIN: [u8; minified_len(PRETTY)] = minify(PRETTY);
        assert_eq!(
            std::str::from_utf8(&MIN).unwrap(),
            r#"{"a b":[1,2],"c":"x \" y\\","d":{}}"#
        );
        let value: serde_json::Value = serde_json::from_slice(PRETTY).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&MIN).unwrap(),
            value
        );
    }

    fn string(text: &str) -> String {
        let mut out = Vec::new();
        push_str(&mut out, text);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn strings_match_serde_json() {
        let every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        let cases = [
            "",
            "plain",
            "exactly8",
            "a \"quoted\" \\ path\\",
            "tab\there, line\nthere\r\n",
            "\u{0}\u{1}\u{8}\u{b}\u{c}\u{1f}\u{7f}",
            "é, 中文, 🦀, \u{2028}, and \"quotes\" after them",
            "long enough to take several words before an escape\"and after",
            &every_ascii,
            &every_ascii.repeat(3)[5..],
        ];
        for case in cases {
            let expected = serde_json::to_string(case).expect("serializes");
            assert_eq!(string(case), expected, "{case:?}");
        }
    }

    #[test]
    fn an_escape_at_every_offset_of_a_word_is_found() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}'] {
            for at in 0..20 {
                let mut text: String = "x".repeat(20);
                text.replace_range(at..at + 1, &special.to_string());
                let expected = serde_json::to_string(&text).expect("serializes");
                assert_eq!(string(&text), expected, "{special:?} at {at}");
            }
        }
    }

    #[test]
    fn bytes_near_the_special_ones_are_not_escaped() {
        // 0x20 and 0x21, 0x23, 0x5b and 0x5d sit beside the bytes that are.
        let text = " !#[]~ !#[]~ !#[]~";
        assert_eq!(string(text), format!("\"{text}\""));
    }

    #[test]
    fn integers_match_serde_json() {
        for n in [0, 7, 10, 99, 1000, -1, -42, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_int(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).expect("serializes"), "{n}");
        }
    }
}
