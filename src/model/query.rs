//! The query of a listing: parsing and validating its parameters. Pure
//! logic, no I/O.

use super::{FieldError, Invalid};

/// Default page size.
pub const DEFAULT_PER_PAGE: u32 = 20;
/// Largest page size.
pub const MAX_PER_PAGE: u32 = 100;
/// Largest page number; keeps the offset far from overflow.
pub const MAX_PAGE: u64 = 1_000_000_000;

/// The column a listing is ordered by; ties are broken by id in the same
/// direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// `created_at`
    Created,
    /// `updated_at`
    Updated,
    /// `title`, by Unicode code point
    Title,
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The column.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

impl Sort {
    /// Newest first: the default.
    pub const NEWEST: Sort = Sort {
        key: SortKey::Created,
        descending: true,
    };

    fn parse(text: &str) -> Option<Sort> {
        let (descending, name) = match text.strip_prefix('-') {
            Some(name) => (true, name),
            None => (false, text),
        };
        let key = match name {
            "created_at" => SortKey::Created,
            "updated_at" => SortKey::Updated,
            "title" => SortKey::Title,
            _ => return None,
        };
        Some(Sort { key, descending })
    }
}

/// A validated listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArticleQuery {
    /// 1-based page number.
    pub page: u64,
    /// Page size, 1 to `MAX_PER_PAGE`.
    pub per_page: u32,
    /// Only articles carrying this tag.
    pub tag: Option<String>,
    /// Only articles by this username (case-insensitive).
    pub author: Option<String>,
    /// Full-text search: the words that must all appear. `Some(empty)` when
    /// `q` had no searchable word, which matches nothing.
    pub words: Option<Vec<String>>,
    /// The order.
    pub sort: Sort,
}

impl ArticleQuery {
    /// Validates the decoded query parameters. The first occurrence of a
    /// parameter counts; unknown parameters are ignored; an empty `tag`,
    /// `author` or `q` is the same as none.
    pub fn parse(params: &[(String, String)]) -> Result<ArticleQuery, Invalid> {
        let get = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        let non_empty = |name: &str| get(name).filter(|v| !v.is_empty()).map(str::to_owned);
        let mut errors = Vec::new();

        let page = match get("page") {
            None => 1,
            Some(text) => number_in(text, 1, MAX_PAGE).unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "page",
                    format!("must be an integer from 1 to {MAX_PAGE}"),
                ));
                1
            }),
        };
        let per_page = match get("per_page") {
            None => DEFAULT_PER_PAGE,
            Some(text) => number_in(text, 1, u64::from(MAX_PER_PAGE))
                .map(|n| n as u32)
                .unwrap_or_else(|| {
                    errors.push(FieldError::new(
                        "per_page",
                        format!("must be an integer from 1 to {MAX_PER_PAGE}"),
                    ));
                    DEFAULT_PER_PAGE
                }),
        };
        let sort = match get("sort") {
            None => Sort::NEWEST,
            Some(text) => Sort::parse(text).unwrap_or_else(|| {
                errors.push(FieldError::new(
                    "sort",
                    "must be one of created_at, -created_at, updated_at, -updated_at, title, -title",
                ));
                Sort::NEWEST
            }),
        };

        if !errors.is_empty() {
            return Err(Invalid(errors));
        }
        Ok(ArticleQuery {
            page,
            per_page,
            tag: non_empty("tag"),
            author: non_empty("author"),
            words: non_empty("q").map(|q| search_words(&q)),
            sort,
        })
    }

    /// Rows to skip before this page.
    pub fn offset(&self) -> u64 {
        (self.page - 1) * u64::from(self.per_page)
    }
}

/// A decimal integer from `min` to `max`, digits only.
fn number_in(text: &str, min: u64, max: u64) -> Option<u64> {
    crate::util::decimal(text).filter(|n| (min..=max).contains(n))
}

/// The words of a search: split on whitespace, keeping only those with a
/// letter or digit (the index holds nothing else). NUL splits words too: no
/// article holds one, SQLite's FTS5 ends a query string at it and
/// PostgreSQL's text cannot carry it.
fn search_words(q: &str) -> Vec<String> {
    q.split(|c: char| c.is_whitespace() || c == '\0')
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::urlencoded;

    fn params(query: &str) -> Vec<(String, String)> {
        urlencoded::parse(query)
    }

    fn invalid_fields(query: &str) -> Vec<String> {
        match ArticleQuery::parse(&params(query)) {
            Err(Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let query = ArticleQuery::parse(&[]).unwrap();
        assert_eq!(
            (query.page, query.per_page, query.sort),
            (1, 20, Sort::NEWEST)
        );
        assert_eq!((query.tag, query.author, query.words), (None, None, None));
    }

    #[test]
    fn parses_every_parameter() {
        let query = ArticleQuery::parse(&params(
            "page=3&per_page=100&tag=web&author=Al&q=rust+sql&sort=-title",
        ))
        .unwrap();
        assert_eq!(query.page, 3);
        assert_eq!(query.per_page, 100);
        assert_eq!(query.tag.as_deref(), Some("web"));
        assert_eq!(query.author.as_deref(), Some("Al"));
        assert_eq!(query.words, Some(vec!["rust".to_owned(), "sql".to_owned()]));
        assert_eq!(
            query.sort,
            Sort {
                key: SortKey::Title,
                descending: true
            }
        );
        assert_eq!(query.offset(), 200);
    }

    #[test]
    fn names_each_invalid_parameter() {
        assert_eq!(invalid_fields("page=0"), ["page"]);
        assert_eq!(invalid_fields("page=abc"), ["page"]);
        assert_eq!(invalid_fields("page=-1"), ["page"]);
        assert_eq!(invalid_fields("page=1e3"), ["page"]);
        assert_eq!(invalid_fields("page=99999999999999999999999"), ["page"]);
        assert_eq!(invalid_fields("per_page=101"), ["per_page"]);
        assert_eq!(invalid_fields("per_page=0"), ["per_page"]);
        assert_eq!(invalid_fields("sort=id"), ["sort"]);
        assert_eq!(
            invalid_fields("page=0&per_page=x&sort=--title"),
            ["page", "per_page", "sort"]
        );
    }

    #[test]
    fn ignores_unknown_and_empty_filters() {
        let query = ArticleQuery::parse(&params("foo=bar&tag=&author=&q=")).unwrap();
        assert_eq!((query.tag, query.author, query.words), (None, None, None));
    }

    #[test]
    fn search_keeps_only_words_with_letters_or_digits() {
        let query = ArticleQuery::parse(&params("q=%22hello%22+OR+*+NEAR(a)+--")).unwrap();
        assert_eq!(
            query.words,
            Some(vec![
                "\"hello\"".to_owned(),
                "OR".to_owned(),
                "NEAR(a)".to_owned()
            ])
        );
        let query = ArticleQuery::parse(&params("q=!!!")).unwrap();
        assert_eq!(query.words, Some(vec![]));
    }

    #[test]
    fn nul_splits_search_words() {
        let query = ArticleQuery::parse(&params("q=a%00b+%00+c%00")).unwrap();
        assert_eq!(
            query.words,
            Some(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
        );
    }
}
