//! What `articles import` reads: users and articles as JSON objects, each
//! checked as the API would check it. The file formats around them (JSON
//! Lines, an array, a `db.json` object) are the command's business.

use serde_json::{Map, Value};

use super::article::{parse_change, ArticleChange, WriteKind};
use super::user::valid_username;
use super::{FieldError, Invalid};
use crate::util::time::parse_rfc3339;

/// An article to import, valid as a `POST` body is, with what a `POST`
/// cannot set: its id, author and timestamps, where given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedArticle {
    pub id: Option<i64>,
    /// Title, content and tags, all set.
    pub change: ArticleChange,
    /// The author's username.
    pub author: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl ImportedArticle {
    /// `created_at` and `updated_at`, missing ones as a create at `now`
    /// would set them (`updated_at` defaults to `created_at`).
    pub fn times(&self, now: i64) -> (i64, i64) {
        let created_at = self.created_at.or(self.updated_at).unwrap_or(now);
        (created_at, self.updated_at.unwrap_or(created_at))
    }

    /// The author, as a user to find by name or add.
    pub fn author_user(&self) -> Option<ImportedUser> {
        self.author.as_ref().map(|name| ImportedUser {
            id: None,
            username: name.clone(),
            created_at: None,
        })
    }
}

/// A user to import: never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedUser {
    pub id: Option<i64>,
    pub username: String,
    pub created_at: Option<i64>,
}

/// Reads an article object: `title`, `content` and `tags` as a `POST` body;
/// `id` a positive integer; `author` null, a username, `{"username": ...}`
/// or the export's `{"id", "username"}`; `created_at` and `updated_at`
/// RFC 3339, `updated_at` not before `created_at`. Names every bad field.
pub fn article(value: &Value) -> Result<ImportedArticle, Invalid> {
    let Value::Object(object) = value else {
        return Err(Invalid(vec![FieldError::new(
            "article",
            "must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    let change = match parse_change(object, WriteKind::Create) {
        Ok(change) => Some(change),
        Err(Invalid(found)) => {
            errors.extend(found);
            None
        }
    };
    let id = id(object, &mut errors);
    let author = match object.get("author") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => username(name, "author", &mut errors),
        Some(Value::Object(author)) => match author.get("username") {
            Some(Value::String(name)) => username(name, "author.username", &mut errors),
            _ => {
                errors.push(FieldError::new("author.username", "must be a string"));
                None
            }
        },
        Some(_) => {
            errors.push(FieldError::new(
                "author",
                "must be null, a username or an object with a username",
            ));
            None
        }
    };
    let created_at = timestamp(object, "created_at", &mut errors);
    let updated_at = timestamp(object, "updated_at", &mut errors);
    if let (Some(created), Some(updated)) = (created_at, updated_at) {
        if updated < created {
            errors.push(FieldError::new(
                "updated_at",
                "must not be before created_at",
            ));
        }
    }
    match change {
        Some(change) if errors.is_empty() => Ok(ImportedArticle {
            id,
            change,
            author,
            created_at,
            updated_at,
        }),
        _ => Err(Invalid(errors)),
    }
}

/// Reads a user object: `username` (required), `id`, `created_at`. Any
/// other field (a token, say) is ignored, never stored.
pub fn user(value: &Value) -> Result<ImportedUser, Invalid> {
    let Value::Object(object) = value else {
        return Err(Invalid(vec![FieldError::new(
            "user",
            "must be a JSON object",
        )]));
    };
    let mut errors = Vec::new();
    let username = match object.get("username") {
        Some(Value::String(name)) => username(name, "username", &mut errors),
        _ => {
            errors.push(FieldError::new("username", "is required, a string"));
            None
        }
    };
    let id = id(object, &mut errors);
    let created_at = timestamp(object, "created_at", &mut errors);
    match username {
        Some(username) if errors.is_empty() => Ok(ImportedUser {
            id,
            username,
            created_at,
        }),
        _ => Err(Invalid(errors)),
    }
}

fn id(object: &Map<String, Value>, errors: &mut Vec<FieldError>) -> Option<i64> {
    match object.get("id") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_i64().filter(|id| *id > 0) {
            Some(id) => Some(id),
            None => {
                errors.push(FieldError::new("id", "must be a positive integer"));
                None
            }
        },
    }
}

fn username(name: &str, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    if valid_username(name) {
        Some(name.to_owned())
    } else {
        errors.push(FieldError::new(
            field,
            "must be a valid username: 1 to 40 characters of A-Z a-z 0-9 _ . -",
        ));
        None
    }
}

fn timestamp(
    object: &Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    match object.get(field) {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_str().and_then(parse_rfc3339) {
            Some(millis) => Some(millis),
            None => {
                errors.push(FieldError::new(field, "must be an RFC 3339 date-time"));
                None
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(result: Result<ImportedArticle, Invalid>) -> Vec<String> {
        result.unwrap_err().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn reads_an_exported_article_and_a_minimal_one() {
        let exported = json!({
            "id": 7, "title": "t", "content": "c", "tags": ["b", "a", "a"],
            "author": {"id": 3, "username": "alice"},
            "created_at": "2026-11-24T21:44:09.123Z", "updated_at": "2026-11-24T21:44:10.000Z"
        });
        let article = article(&exported).unwrap();
        assert_eq!(article.id, Some(7));
        assert_eq!(article.change.tags, Some(vec!["a".into(), "b".into()]));
        assert_eq!(article.author.as_deref(), Some("alice"));
        assert_eq!(article.created_at, Some(1_795_556_649_123));
        let minimal = super::article(&json!({"title": "t", "content": "c"})).unwrap();
        assert_eq!(
            (minimal.id, minimal.author, minimal.created_at),
            (None, None, None)
        );
        let by_name = super::article(&json!({"title": "t", "content": "c", "author": "bob"}));
        assert_eq!(by_name.unwrap().author.as_deref(), Some("bob"));
    }

    #[test]
    fn names_every_bad_field() {
        let bad = json!({
            "id": -1, "title": "", "content": "c", "author": {"username": "no way"},
            "created_at": "yesterday"
        });
        assert_eq!(
            fields(article(&bad)),
            ["title", "id", "author.username", "created_at"]
        );
        let backwards = json!({"title": "t", "content": "c",
            "created_at": "2026-11-24T21:44:10Z", "updated_at": "2026-11-24T21:44:09Z"});
        assert_eq!(fields(article(&backwards)), ["updated_at"]);
        assert_eq!(fields(article(&json!([1]))), ["article"]);
        assert!(user(&json!({"id": 1, "username": "x y"})).is_err());
        let user = user(&json!({"id": 2, "username": "Zed", "token": "secret"})).unwrap();
        assert_eq!((user.id, user.username.as_str()), (Some(2), "Zed"));
    }
}
