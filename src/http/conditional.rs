//! Conditional requests (RFC 9110 §13): the `ETag` of an article and the
//! evaluation of `If-Match` and `If-None-Match`. Pure logic, no I/O.

use crate::model::article::Article;
use crate::util::json;

/// The strong entity tag of an article: `"<id>-<updated_at in ms>"`.
///
/// Ids are never reused and `updated_at` moves forward on every change, even
/// within one millisecond (see `Store::update_article`), so the tag changes
/// whenever the representation does. Nothing else in the representation can
/// change on its own: usernames are never renamed.
pub fn etag(article: &Article) -> String {
    // As `format!`, without its machinery: that cost 1,500 instructions on
    // every GET.
    let mut tag = Vec::with_capacity(42);
    tag.push(b'"');
    json::push_int(&mut tag, article.id);
    tag.push(b'-');
    json::push_int(&mut tag, article.updated_at);
    tag.push(b'"');
    String::from_utf8(tag).expect("digits and punctuation")
}

/// One entity tag sent by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// Sent with the `W/` prefix.
    pub weak: bool,
    /// The opaque tag, double quotes included (`"abc"`), as RFC 9110 defines it.
    pub opaque: &'a str,
}

/// The value of an `If-Match` or `If-None-Match` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList<'a> {
    /// `*`: any current representation.
    Any,
    /// A list of entity tags; an empty list matches nothing.
    Tags(Vec<EntityTag<'a>>),
    /// Not the syntax of either field. Matches nothing, so a malformed
    /// `If-Match` can never turn into an unconditional write.
    Invalid,
}

impl<'a> TagList<'a> {
    /// Parses `"*" / #entity-tag`. Empty list elements and optional
    /// whitespace around commas are allowed, as RFC 9110 §5.6.1 asks.
    pub fn parse(value: &'a str) -> TagList<'a> {
        if value.trim_matches(OWS) == "*" {
            return TagList::Any;
        }
        let mut tags = Vec::new();
        let mut rest = value;
        loop {
            rest = rest.trim_start_matches(OWS);
            if let Some(after_comma) = rest.strip_prefix(',') {
                rest = after_comma;
                continue;
            }
            if rest.is_empty() {
                return TagList::Tags(tags);
            }
            let Some((tag, after)) = entity_tag(rest) else {
                return TagList::Invalid;
            };
            tags.push(tag);
            rest = after.trim_start_matches(OWS);
            if !rest.is_empty() && !rest.starts_with(',') {
                return TagList::Invalid;
            }
        }
    }

    /// Strong comparison, for `If-Match`: the same opaque tag, neither weak.
    /// `current` is a strong tag made by `etag`.
    pub fn matches_strong(&self, current: &str) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| !t.weak && t.opaque == current),
            TagList::Invalid => false,
        }
    }

    /// Weak comparison, for `If-None-Match`: the same opaque tag, `W/` or not.
    pub fn matches_weak(&self, current: &str) -> bool {
        match self {
            TagList::Any => true,
            TagList::Tags(tags) => tags.iter().any(|t| t.opaque == current),
            TagList::Invalid => false,
        }
    }
}

/// Optional whitespace (RFC 9110 §5.6.3).
const OWS: [char; 2] = [' ', '\t'];

/// One `[W/]"..."` at the start of `text`, and what follows it.
fn entity_tag(text: &str) -> Option<(EntityTag<'_>, &str)> {
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let inside = quoted.strip_prefix('"')?;
    let end = inside.find('"')?;
    // etagc: %x21 / %x23-7E / obs-text; `"` itself ends the tag above.
    if !inside[..end]
        .bytes()
        .all(|b| b == 0x21 || (b >= 0x23 && b != 0x7F))
    {
        return None;
    }
    let opaque = &quoted[..end + 2];
    Some((EntityTag { weak, opaque }, &inside[end + 1..]))
}

/// What the preconditions of a request decide (RFC 9110 §13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on with the method.
    Proceed,
    /// GET or HEAD: answer 304 Not Modified.
    NotModified,
    /// Answer 412 Precondition Failed, with this detail.
    Failed(&'static str),
}

/// The `If-Match` and `If-None-Match` fields of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions<'a> {
    if_match: Option<TagList<'a>>,
    if_none_match: Option<TagList<'a>>,
}

impl<'a> Preconditions<'a> {
    /// Reads both fields; `None` when a field is absent.
    pub fn parse(if_match: Option<&'a str>, if_none_match: Option<&'a str>) -> Preconditions<'a> {
        Preconditions {
            if_match: if_match.map(TagList::parse),
            if_none_match: if_none_match.map(TagList::parse),
        }
    }

    /// Evaluates the fields against an existing resource whose tag is
    /// `current`, in RFC 9110's order: `If-Match` first, then
    /// `If-None-Match`. `read` is true for GET and HEAD, where a matching
    /// `If-None-Match` means 304; for any other method it means 412. A
    /// malformed `If-None-Match` is ignored (it can only cost a full answer).
    pub fn evaluate(&self, current: &str, read: bool) -> Verdict {
        match &self.if_match {
            Some(TagList::Invalid) => {
                return Verdict::Failed("If-Match is not * or a list of quoted entity tags")
            }
            Some(list) if !list.matches_strong(current) => {
                return Verdict::Failed("If-Match does not match the article's current ETag")
            }
            _ => {}
        }
        match &self.if_none_match {
            Some(list) if list.matches_weak(current) => match read {
                true => Verdict::NotModified,
                false => Verdict::Failed("If-None-Match matches the article's current ETag"),
            },
            _ => Verdict::Proceed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strong(opaque: &str) -> EntityTag<'_> {
        EntityTag {
            weak: false,
            opaque,
        }
    }

    #[test]
    fn etag_is_quoted_id_and_update_stamp() {
        let article = Article {
            id: 7,
            title: "t".into(),
            content: "c".into(),
            tags: vec![],
            author: None,
            created_at: 1,
            updated_at: 1_700_000_000_123,
        };
        assert_eq!(etag(&article), "\"7-1700000000123\"");
    }

    #[test]
    fn parses_star_lists_weak_tags_and_empty_elements() {
        assert_eq!(TagList::parse("*"), TagList::Any);
        assert_eq!(TagList::parse(" * "), TagList::Any);
        assert_eq!(
            TagList::parse("\"a\""),
            TagList::Tags(vec![strong("\"a\"")])
        );
        assert_eq!(
            TagList::parse(" , \"a\" ,W/\"b\",\t\"\" ,"),
            TagList::Tags(vec![
                strong("\"a\""),
                EntityTag {
                    weak: true,
                    opaque: "\"b\""
                },
                strong("\"\""),
            ])
        );
        assert_eq!(TagList::parse(""), TagList::Tags(vec![]));
        assert_eq!(TagList::parse(" , "), TagList::Tags(vec![]));
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in [
            "a",
            "\"a",
            "\"a\" \"b\"",
            "\"a\"b",
            "w/\"a\"",
            "W/ \"a\"",
            "*, \"a\"",
            "**",
            "\"a b\"",
            "\"a\\\"\"",
        ] {
            assert_eq!(TagList::parse(bad), TagList::Invalid, "{bad}");
        }
    }

    #[test]
    fn strong_comparison_refuses_weak_tags() {
        let current = "\"1-5\"";
        assert!(TagList::parse("\"1-5\"").matches_strong(current));
        assert!(TagList::parse("\"x\", \"1-5\"").matches_strong(current));
        assert!(!TagList::parse("W/\"1-5\"").matches_strong(current));
        assert!(!TagList::parse("\"1-4\"").matches_strong(current));
        assert!(!TagList::parse("").matches_strong(current));
        assert!(TagList::parse("*").matches_strong(current));
    }

    #[test]
    fn weak_comparison_ignores_the_prefix() {
        let current = "\"1-5\"";
        assert!(TagList::parse("W/\"1-5\"").matches_weak(current));
        assert!(TagList::parse("\"1-5\"").matches_weak(current));
        assert!(!TagList::parse("\"1-6\"").matches_weak(current));
        assert!(!TagList::parse("1-5").matches_weak(current));
    }

    #[test]
    fn evaluates_in_rfc_order() {
        let current = "\"1-5\"";
        let eval = |m, n, read| Preconditions::parse(m, n).evaluate(current, read);
        assert_eq!(eval(None, None, true), Verdict::Proceed);
        assert_eq!(eval(None, Some("\"1-5\""), true), Verdict::NotModified);
        assert_eq!(eval(None, Some("*"), true), Verdict::NotModified);
        assert_eq!(eval(None, Some("\"1-4\""), true), Verdict::Proceed);
        assert_eq!(eval(None, Some("garbage"), true), Verdict::Proceed);
        assert!(matches!(
            eval(None, Some("\"1-5\""), false),
            Verdict::Failed(_)
        ));
        assert_eq!(eval(Some("\"1-5\""), None, false), Verdict::Proceed);
        assert_eq!(eval(Some("*"), None, false), Verdict::Proceed);
        assert!(matches!(
            eval(Some("\"1-4\""), None, false),
            Verdict::Failed(_)
        ));
        assert!(matches!(eval(Some("1-5"), None, false), Verdict::Failed(_)));
        // If-Match is checked before If-None-Match.
        assert!(matches!(
            eval(Some("\"1-4\""), Some("\"1-5\""), true),
            Verdict::Failed(_)
        ));
    }
}
