//! Users and their tokens: who may be named what, how a token is made and
//! what the database keeps of it (only its hash).

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Every token starts with this, so secret scanners can recognise a leaked
/// one.
pub const TOKEN_PREFIX: &str = "art_";
/// Random bytes in a token.
pub const TOKEN_BYTES: usize = 32;
/// Longest username.
pub const MAX_USERNAME_CHARS: usize = 40;

/// Whether writes need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// A write without `Authorization` is anonymous (the default).
    Open,
    /// Every write needs a valid token.
    Required,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Assigned by the server.
    pub id: i64,
    /// 1 to 40 of `[A-Za-z0-9_.-]`, unique case-insensitively.
    pub username: String,
    /// Milliseconds since the epoch; RFC 3339 on the wire.
    #[serde(serialize_with = "crate::util::time::serialize_rfc3339")]
    pub created_at: i64,
}

/// Whether `name` is a valid username.
pub fn valid_username(name: &str) -> bool {
    (1..=MAX_USERNAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A new token: the prefix and 32 bytes of the OS's randomness, base64url.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{TOKEN_PREFIX}{}", base64url(&bytes)))
}

/// What the database keeps of a token. Tokens carry 256 random bits, so a
/// plain SHA-256 is enough: there is nothing to brute-force, and it lets a
/// token be found by its hash in an index.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert!(valid_username("alice"));
        assert!(valid_username("A.b_c-9"));
        assert!(valid_username(&"x".repeat(40)));
        for bad in ["", "a b", "ünï", "a/b", "a@b", &"x".repeat(41)] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn tokens_are_prefixed_random_and_url_safe() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(a.len(), TOKEN_PREFIX.len() + 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
    }

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn hashes_are_sha256() {
        let hash = token_hash("abc");
        assert_eq!(hash[..4], [0xba, 0x78, 0x16, 0xbf]);
    }
}
