//! The signing secret and the `webhook-signature` it makes (Standard
//! Webhooks: `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`).

use std::fmt;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a secret starts with.
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest key bytes accepted: 192 bits.
pub const MIN_SECRET_BYTES: usize = 24;
/// Most key bytes accepted.
pub const MAX_SECRET_BYTES: usize = 64;

/// The key that signs every request. Its `Debug` never shows it, so no
/// configuration dump, log line or panic message can leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Reads `whsec_` followed by the base64 (standard alphabet, padding
    /// optional) of 24 to 64 bytes. The error says what is wrong without
    /// repeating any of the text.
    pub fn parse(text: &str) -> Result<WebhookSecret, &'static str> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or("must start with whsec_")?;
        let key = STANDARD
            .decode(encoded)
            .or_else(|_| STANDARD_NO_PAD.decode(encoded))
            .map_err(|_| "the part after whsec_ is not valid base64")?;
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
            return Err("the part after whsec_ must decode to 24 to 64 bytes");
        }
        Ok(WebhookSecret { key })
    }

    /// The `webhook-signature` value for one attempt.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification.
    #[test]
    fn signs_like_the_specification_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn accepts_24_to_64_bytes_with_or_without_padding() {
        for len in [24, 25, 32, 64] {
            let encoded = STANDARD.encode(vec![7u8; len]);
            assert!(WebhookSecret::parse(&format!("whsec_{encoded}")).is_ok());
            let bare = encoded.trim_end_matches('=');
            assert!(WebhookSecret::parse(&format!("whsec_{bare}")).is_ok());
        }
    }

    /// The errors are static text, so they cannot repeat the secret.
    #[test]
    fn refuses_other_forms() {
        let short = format!("whsec_{}", STANDARD.encode([1u8; 23]));
        let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        let plain = STANDARD.encode([1u8; 32]);
        let url_safe = format!("whsec_{}", "_-".repeat(16));
        for bad in [
            short.as_str(),
            &long,
            &plain,
            &url_safe,
            "whsec_",
            "whsec_ not base64 at all !!",
            "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(WebhookSecret::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(
            !shown.contains("MfKQ") && shown.contains("redacted"),
            "{shown}"
        );
    }
}
