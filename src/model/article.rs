//! The article resource: its wire shape and the validation of what clients
//! send. Pure logic, no I/O.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{FieldError, Invalid};
use crate::util::json;
use crate::util::time::write_rfc3339_millis;

/// Longest title, in Unicode scalar values.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest tag, in Unicode scalar values.
pub const MAX_TAG_CHARS: usize = 50;
/// Most tags on one article, after deduplication.
pub const MAX_TAGS: usize = 20;

/// An article as stored and as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Article {
    /// Assigned by the server, never reused.
    pub id: i64,
    /// 1 to 200 characters, not blank.
    pub title: String,
    /// Not blank.
    pub content: String,
    /// Deduplicated and sorted.
    pub tags: Vec<String>,
    /// The user whose token created it; `None` for an anonymous write.
    pub author: Option<Author>,
    /// Milliseconds since the epoch; RFC 3339 on the wire.
    #[serde(serialize_with = "crate::util::time::serialize_rfc3339")]
    pub created_at: i64,
    /// Milliseconds since the epoch; RFC 3339 on the wire.
    #[serde(serialize_with = "crate::util::time::serialize_rfc3339")]
    pub updated_at: i64,
}

impl Article {
    /// About how many bytes its JSON takes: text lengths plus the fixed
    /// part, so response buffers are sized once.
    pub(crate) fn json_size_hint(&self) -> usize {
        let tags: usize = self.tags.iter().map(|t| t.len() + 3).sum();
        let author = self.author.as_ref().map_or(0, |a| a.username.len() + 32);
        200 + self.title.len() + self.content.len() + tags + author
    }

    /// Its JSON, the bytes `serde_json::to_vec` gives, written by hand for
    /// speed (see `json`); a unit test holds the two equal.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.json_size_hint());
        self.write_json(&mut out);
        out
    }

    /// A page of articles as a JSON array, as `to_json` writes each.
    pub fn list_to_json(articles: &[Article]) -> Vec<u8> {
        let size = articles.iter().map(Article::json_size_hint).sum::<usize>() + 2;
        let mut out = Vec::with_capacity(size);
        out.push(b'[');
        for (i, article) in articles.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            article.write_json(&mut out);
        }
        out.push(b']');
        out
    }

    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"id":"#);
        json::push_int(out, self.id);
        out.extend_from_slice(br#","title":"#);
        json::push_str(out, &self.title);
        out.extend_from_slice(br#","content":"#);
        json::push_str(out, &self.content);
        out.extend_from_slice(br#","tags":["#);
        for (i, tag) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::push_str(out, tag);
        }
        out.extend_from_slice(br#"],"author":"#);
        match &self.author {
            Some(author) => {
                out.extend_from_slice(br#"{"id":"#);
                json::push_int(out, author.id);
                out.extend_from_slice(br#","username":"#);
                json::push_str(out, &author.username);
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(br#","created_at":"#);
        push_time(out, self.created_at);
        out.extend_from_slice(br#","updated_at":"#);
        push_time(out, self.updated_at);
        out.push(b'}');
    }
}

/// Appends milliseconds since the epoch as a quoted RFC 3339 string, as
/// `time::serialize_rfc3339` does.
fn push_time(out: &mut Vec<u8>, millis: i64) {
    let mut text = [0u8; 24];
    write_rfc3339_millis(millis, &mut text);
    out.push(b'"');
    out.extend_from_slice(&text);
    out.push(b'"');
}

/// The author embedded in an article.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Author {
    /// The user's id.
    pub id: i64,
    /// The user's name.
    pub username: String,
}

/// The fields a write sets. `None` leaves a field as it is (PATCH only: a
/// create or replace always carries every field).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArticleChange {
    /// New title.
    pub title: Option<String>,
    /// New content.
    pub content: Option<String>,
    /// New tags, already deduplicated and sorted.
    pub tags: Option<Vec<String>>,
}

/// How a body is read: which fields are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// POST: title and content required, tags default to `[]`.
    Create,
    /// PUT: as POST.
    Replace,
    /// PATCH: every field optional; absent fields stay as they are.
    Patch,
}

/// Validates a JSON object sent by a client into an `ArticleChange`,
/// collecting every problem rather than stopping at the first.
///
/// `id`, `author`, `created_at`, `updated_at` and unknown fields are ignored,
/// so a client may PUT back what it GOT. A `tags` of `null` counts as absent.
pub fn parse_change(body: &Map<String, Value>, kind: WriteKind) -> Result<ArticleChange, Invalid> {
    let required = kind != WriteKind::Patch;
    let mut errors = Vec::new();

    let title = text_field(body, "title", required, &mut errors, check_title);
    let content = text_field(body, "content", required, &mut errors, check_content);
    let tags = match body.get("tags") {
        None | Some(Value::Null) if required => Some(Vec::new()),
        None | Some(Value::Null) => None,
        Some(value) => parse_tags(value, &mut errors),
    };

    if errors.is_empty() {
        Ok(ArticleChange {
            title,
            content,
            tags,
        })
    } else {
        Err(Invalid(errors))
    }
}

/// Reads a string field and runs `check` on it, recording problems.
fn text_field(
    body: &Map<String, Value>,
    name: &str,
    required: bool,
    errors: &mut Vec<FieldError>,
    check: fn(&str) -> Option<&'static str>,
) -> Option<String> {
    match body.get(name) {
        None if required => {
            errors.push(FieldError::new(name, "is required"));
            None
        }
        None => None,
        Some(Value::String(text)) => match check(text) {
            Some(message) => {
                errors.push(FieldError::new(name, message));
                None
            }
            None => Some(text.clone()),
        },
        Some(_) => {
            errors.push(FieldError::new(name, "must be a string"));
            None
        }
    }
}

fn check_title(title: &str) -> Option<&'static str> {
    let chars = title.chars().count();
    if chars == 0 || chars > MAX_TITLE_CHARS {
        Some("must be 1 to 200 characters")
    } else if title.trim().is_empty() {
        Some("must not be blank")
    } else if title.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

fn check_content(content: &str) -> Option<&'static str> {
    if content.trim().is_empty() {
        Some("must not be blank")
    } else if content.contains('\0') {
        Some("must not contain NUL characters")
    } else {
        None
    }
}

fn check_tag(tag: &str) -> Option<&'static str> {
    let chars = tag.chars().count();
    if chars == 0 || chars > MAX_TAG_CHARS {
        Some("must be 1 to 50 characters")
    } else if tag.starts_with(char::is_whitespace) || tag.ends_with(char::is_whitespace) {
        Some("must not have leading or trailing whitespace")
    } else if tag.chars().any(char::is_control) {
        Some("must not contain control characters")
    } else {
        None
    }
}

/// Validates a `tags` value: a list of valid tags, at most `MAX_TAGS` after
/// deduplication. Returns them deduplicated and sorted.
fn parse_tags(value: &Value, errors: &mut Vec<FieldError>) -> Option<Vec<String>> {
    let Value::Array(items) = value else {
        errors.push(FieldError::new("tags", "must be a list of strings"));
        return None;
    };
    let before = errors.len();
    let mut tags = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = || format!("tags[{index}]");
        match item {
            Value::String(tag) => match check_tag(tag) {
                Some(message) => errors.push(FieldError::new(field(), message)),
                None => tags.push(tag.clone()),
            },
            _ => errors.push(FieldError::new(field(), "must be a string")),
        }
    }
    tags.sort_unstable();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        errors.push(FieldError::new(
            "tags",
            "must have at most 20 distinct tags",
        ));
    }
    (errors.len() == before).then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn article(id: i64, author: Option<Author>) -> Article {
        Article {
            id,
            title: "A \"quoted\" title, é".into(),
            content: "Line one\nline two\twith a tab and a \\ and \u{1}. ".repeat(20),
            tags: vec!["python".into(), "rust".into(), "web\"s".into()],
            author,
            created_at: 1_764_000_000_123,
            updated_at: 1_764_000_999_000,
        }
    }

    #[test]
    fn hand_written_json_is_what_serde_json_writes() {
        let author = Author {
            id: 7,
            username: "ada".into(),
        };
        let mut bare = article(2, None);
        bare.tags.clear();
        let articles = [article(1, Some(author)), bare, article(i64::MAX, None)];
        for one in &articles {
            assert_eq!(one.to_json(), serde_json::to_vec(one).unwrap());
        }
        assert_eq!(
            Article::list_to_json(&articles),
            serde_json::to_vec(&articles).unwrap()
        );
        assert_eq!(Article::list_to_json(&[]), b"[]");
    }

    fn parse(value: Value, kind: WriteKind) -> Result<ArticleChange, Vec<FieldError>> {
        let Value::Object(map) = value else {
            panic!("not an object")
        };
        parse_change(&map, kind).map_err(|Invalid(errors)| errors)
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn accepts_a_valid_article_and_sorts_deduplicated_tags() {
        let change = parse(
            json!({"title": "T", "content": "C", "tags": ["web", "python", "web"]}),
            WriteKind::Create,
        )
        .unwrap();
        assert_eq!(change.title.as_deref(), Some("T"));
        assert_eq!(
            change.tags,
            Some(vec!["python".to_owned(), "web".to_owned()])
        );
    }

    #[test]
    fn tags_default_to_empty_on_create_and_stay_unset_on_patch() {
        let created = parse(json!({"title": "T", "content": "C"}), WriteKind::Create).unwrap();
        assert_eq!(created.tags, Some(vec![]));
        let patched = parse(json!({"title": "T"}), WriteKind::Patch).unwrap();
        assert_eq!(patched.tags, None);
        assert_eq!(patched.content, None);
    }

    #[test]
    fn reports_every_missing_required_field() {
        let errors = parse(json!({}), WriteKind::Replace).unwrap_err();
        assert_eq!(fields(&errors), ["title", "content"]);
    }

    #[test]
    fn rejects_wrong_types() {
        let errors = parse(
            json!({"title": 5, "content": ["x"], "tags": "a"}),
            WriteKind::Create,
        )
        .unwrap_err();
        assert_eq!(fields(&errors), ["title", "content", "tags"]);
    }

    #[test]
    fn title_length_counts_characters_not_bytes() {
        let ok = "é".repeat(200);
        assert!(parse(json!({"title": ok, "content": "c"}), WriteKind::Create).is_ok());
        let long = "é".repeat(201);
        let errors = parse(json!({"title": long, "content": "c"}), WriteKind::Create).unwrap_err();
        assert_eq!(errors[0].message, "must be 1 to 200 characters");
    }

    #[test]
    fn rejects_blank_title_and_content() {
        let errors =
            parse(json!({"title": "  ", "content": "\n\t"}), WriteKind::Create).unwrap_err();
        assert_eq!(fields(&errors), ["title", "content"]);
    }

    #[test]
    fn rejects_control_characters_in_title() {
        let errors = parse(
            json!({"title": "a\r\nb", "content": "c"}),
            WriteKind::Create,
        )
        .unwrap_err();
        assert_eq!(fields(&errors), ["title"]);
    }

    #[test]
    fn rejects_untrimmed_empty_and_long_tags_by_index() {
        let errors = parse(
            json!({"title": "t", "content": "c", "tags": ["ok", " x", "", "y".repeat(51), 3]}),
            WriteKind::Create,
        )
        .unwrap_err();
        assert_eq!(
            fields(&errors),
            ["tags[1]", "tags[2]", "tags[3]", "tags[4]"]
        );
    }

    #[test]
    fn counts_tags_after_deduplication() {
        let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        let mut with_dupes = twenty.clone();
        with_dupes.extend(twenty.iter().cloned());
        assert!(parse(
            json!({"title": "t", "content": "c", "tags": with_dupes}),
            WriteKind::Create
        )
        .is_ok());
        let mut too_many = twenty;
        too_many.push("t20".into());
        let errors = parse(
            json!({"title": "t", "content": "c", "tags": too_many}),
            WriteKind::Create,
        )
        .unwrap_err();
        assert_eq!(fields(&errors), ["tags"]);
    }

    #[test]
    fn ignores_server_owned_and_unknown_fields() {
        let change = parse(
            json!({"id": 9, "author": "x", "created_at": 1, "title": "t", "content": "c", "extra": true}),
            WriteKind::Replace,
        )
        .unwrap();
        assert_eq!(change.title.as_deref(), Some("t"));
    }

    #[test]
    fn serializes_timestamps_as_rfc3339() {
        let article = Article {
            id: 1,
            title: "t".into(),
            content: "c".into(),
            tags: vec![],
            author: None,
            created_at: 0,
            updated_at: 1,
        };
        let json = serde_json::to_value(&article).unwrap();
        assert_eq!(json["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(json["updated_at"], "1970-01-01T00:00:00.001Z");
        assert_eq!(json["author"], Value::Null);
    }
}
