//! Webhook URLs: checked once, at start, so that every later attempt only
//! has to connect and write.

use std::fmt;

/// Longest URL accepted, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// A receiver's `http://` URL, split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookUrl {
    /// The URL as configured: the key of its deliveries in the database.
    text: String,
    /// Host name or address to connect to (an IPv6 address without brackets).
    host: String,
    /// TCP port, 80 unless given.
    port: u16,
    /// `host[:port]` as written: the `Host` header.
    authority: String,
    /// Path and query, at least `/`: the request target.
    target: String,
}

impl WebhookUrl {
    /// Checks and splits `text`: `http://HOST[:PORT][/PATH][?QUERY]`, with
    /// no user name or password, no fragment and nothing but visible ASCII.
    /// The error explains the rule broken (the caller names the flag).
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        if text.len() > MAX_URL_BYTES {
            return Err(format!("a URL is at most {MAX_URL_BYTES} bytes"));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "a URL must be visible ASCII, without spaces (percent-encode the rest)".into(),
            );
        }
        let lower = text.to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err("https:// needs TLS, which this build does not include; \
                        use http:// (on a trusted network, or to a local TLS-terminating proxy)"
                .into());
        }
        if !lower.starts_with("http://") {
            return Err("must be an http:// URL".into());
        }
        let rest = &text["http://".len()..];
        if rest.contains('#') {
            return Err("a webhook URL cannot have a #fragment".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err("a webhook URL cannot carry a user name or password".into());
        }
        let (host, port) = split_authority(authority)?;
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        Ok(WebhookUrl {
            text: text.to_owned(),
            host,
            port,
            authority: authority.to_owned(),
            target,
        })
    }

    /// The URL as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Where to connect.
    pub fn host_port(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// The `Host` header.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The request target: path and query.
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// For logs: the URL without its query, which may hold a credential of the
/// receiver's (`?token=...`).
impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text.split_once('?') {
            Some((base, _)) => write!(f, "{base}?…"),
            None => f.write_str(&self.text),
        }
    }
}

/// `host[:port]` into the host to connect to and the port.
fn split_authority(authority: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        v6.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("[{v6}] is not an IPv6 address"))?;
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':').ok_or("junk after ]")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let name_ok = |h: &str| {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    };
    if !authority.starts_with('[') && !name_ok(host) {
        return Err("the host must be a name or an IP address".into());
    }
    let port = match port {
        None => 80,
        // Digits only: u16's parser would also take a leading `+`.
        Some(p) => Some(p)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("'{p}' is not a port from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> (String, u16, String, String) {
        let url = WebhookUrl::parse(text).unwrap();
        let (host, port) = url.host_port();
        (
            host.to_owned(),
            port,
            url.authority().to_owned(),
            url.target().to_owned(),
        )
    }

    #[test]
    fn splits_http_urls() {
        assert_eq!(
            parts("http://example.com"),
            ("example.com".into(), 80, "example.com".into(), "/".into())
        );
        assert_eq!(
            parts("http://127.0.0.1:9000/hooks/a?x=1&y=%20"),
            (
                "127.0.0.1".into(),
                9000,
                "127.0.0.1:9000".into(),
                "/hooks/a?x=1&y=%20".into()
            )
        );
        assert_eq!(
            parts("http://[::1]:81?q"),
            ("::1".into(), 81, "[::1]:81".into(), "/?q".into())
        );
        assert_eq!(parts("HTTP://Host_1.local/").1, 80);
    }

    #[test]
    fn refuses_what_it_cannot_send() {
        for (bad, why) in [
            ("https://example.com/", "TLS"),
            ("ftp://example.com/", "http://"),
            ("example.com", "http://"),
            ("http://", "host"),
            ("http:///path", "host"),
            ("http://user:pw@example.com/", "password"),
            ("http://example.com/#frag", "fragment"),
            ("http://exa mple.com/", "ASCII"),
            ("http://exämple.com/", "ASCII"),
            ("http://example.com:0/", "port"),
            ("http://example.com:65536/", "port"),
            ("http://example.com:+80/", "port"),
            ("http://example.com:/", "port"),
            ("http://[::1/", "]"),
            ("http://[nope]/", "IPv6"),
            ("http://a,b/", "host"),
        ] {
            let err = WebhookUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(WebhookUrl::parse(&format!("http://h/{}", "a".repeat(MAX_URL_BYTES))).is_err());
    }

    #[test]
    fn shows_no_query_in_logs() {
        let url = WebhookUrl::parse("http://h/p?token=abc").unwrap();
        assert_eq!(url.to_string(), "http://h/p?…");
        assert_eq!(url.as_str(), "http://h/p?token=abc");
    }
}
