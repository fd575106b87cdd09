//! `application/x-www-form-urlencoded` query strings, both ways.

/// Splits a query string into decoded `(name, value)` pairs, in order.
///
/// `+` is a space and `%XX` a byte. A `%` not followed by two hex digits is
/// kept literally (as browsers do); bytes that do not form UTF-8 become
/// U+FFFD. Empty pieces (`a=1&&b=2`) are skipped.
pub fn parse(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// Decodes one form-urlencoded component.
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
}

fn hex(byte: &u8) -> Option<u8> {
    let byte = *byte;
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Encodes one component so that it survives a round trip through `parse`
/// and contains only characters that are safe in a URL and a header value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.push('%');
                out.push(HEX[usize::from(byte >> 4)] as char);
                out.push(HEX[usize::from(byte & 15)] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn decodes_plus_and_percent_escapes() {
        assert_eq!(
            parse("q=hello+w%C3%B6rld&tag=a%2Bb"),
            [pair("q", "hello wörld"), pair("tag", "a+b")]
        );
    }

    #[test]
    fn keeps_order_duplicates_and_valueless_names() {
        assert_eq!(
            parse("a=1&&b&a=2"),
            [pair("a", "1"), pair("b", ""), pair("a", "2")]
        );
    }

    #[test]
    fn keeps_malformed_escapes_literally() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%41%4"), "A%4");
    }

    #[test]
    fn replaces_invalid_utf8() {
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }

    #[test]
    fn encode_round_trips_and_is_header_safe() {
        for text in ["a b", "x&y=z", "日本", "\r\n", "%", "+"] {
            let encoded = encode(text);
            assert!(encoded.bytes().all(|b| b.is_ascii_graphic()), "{encoded}");
            assert_eq!(decode(&encoded), text);
        }
    }
}
