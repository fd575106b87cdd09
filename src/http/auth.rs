//! The auth policy of requests: reading bearer credentials, and the rules
//! of who may write what.

use crate::http::error::ApiError;
use crate::model::{Article, AuthMode, User};

/// The credentials a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// No `Authorization` header.
    None,
    /// `Bearer <token>`.
    Bearer(&'a str),
    /// Anything else: another scheme, no token, stray spaces.
    Malformed,
}

/// Reads an `Authorization` header. The scheme is case-insensitive.
pub fn credentials(header: Option<&str>) -> Credentials<'_> {
    let Some(header) = header else {
        return Credentials::None;
    };
    match header.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer")
                && !token.is_empty()
                && !token.contains(char::is_whitespace) =>
        {
            Credentials::Bearer(token)
        }
        _ => Credentials::Malformed,
    }
}

/// 401 for a request without a token where one is needed.
pub fn token_required() -> ApiError {
    ApiError::Unauthorized {
        detail: "A bearer token is required",
        invalid: false,
    }
}

/// 401 for a token that is malformed, unknown or revoked.
pub fn token_invalid() -> ApiError {
    ApiError::Unauthorized {
        detail: "The bearer token is invalid or revoked",
        invalid: true,
    }
}

/// The writer of a request, checked against the auth mode.
pub fn writer(user: Option<&User>, mode: AuthMode) -> Result<Option<&User>, ApiError> {
    match (user, mode) {
        (None, AuthMode::Required) => Err(token_required()),
        (user, _) => Ok(user),
    }
}

/// Whether `user` may modify or delete `article`: anyone may change an
/// anonymous article, only its author one that has an author.
pub fn may_modify(user: Option<&User>, article: &Article) -> Result<(), ApiError> {
    match (&article.author, user) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(token_required()),
        (Some(author), Some(user)) if author.id == user.id => Ok(()),
        (Some(_), Some(_)) => Err(ApiError::Forbidden(
            "Only the author may modify or delete this article",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::article::Author;

    fn user(id: i64) -> User {
        User {
            id,
            username: format!("u{id}"),
            created_at: 0,
        }
    }

    fn article(author: Option<i64>) -> Article {
        Article {
            id: 1,
            title: "t".into(),
            content: "c".into(),
            tags: vec![],
            author: author.map(|id| Author {
                id,
                username: format!("u{id}"),
            }),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn reads_bearer_credentials() {
        assert_eq!(credentials(None), Credentials::None);
        assert_eq!(credentials(Some("Bearer abc")), Credentials::Bearer("abc"));
        assert_eq!(credentials(Some("bEaReR abc")), Credentials::Bearer("abc"));
        for bad in [
            "Basic abc",
            "Bearer",
            "Bearer ",
            "Bearer a b",
            "abc",
            "Bearer  abc",
        ] {
            assert_eq!(credentials(Some(bad)), Credentials::Malformed, "{bad}");
        }
    }

    #[test]
    fn ownership_rules() {
        assert!(may_modify(None, &article(None)).is_ok());
        assert!(may_modify(Some(&user(2)), &article(None)).is_ok());
        assert!(may_modify(Some(&user(2)), &article(Some(2))).is_ok());
        assert_eq!(
            may_modify(None, &article(Some(2))).unwrap_err().status(),
            401
        );
        assert_eq!(
            may_modify(Some(&user(3)), &article(Some(2)))
                .unwrap_err()
                .status(),
            403
        );
    }

    #[test]
    fn required_mode_needs_a_writer() {
        assert!(writer(None, AuthMode::Open).unwrap().is_none());
        assert_eq!(writer(None, AuthMode::Required).unwrap_err().status(), 401);
        assert!(writer(Some(&user(1)), AuthMode::Required).is_ok());
    }
}
