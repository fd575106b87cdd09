//! The domain: articles, users, listing queries and change events, with the
//! validation of what clients send. Pure data and logic: no I/O, no SQL, no
//! HTTP. Validation fails with `Invalid`, which names every bad field.

pub mod article;
pub mod event;
pub mod import;
pub mod query;
pub mod user;

use std::fmt;

use serde::Serialize;

pub use article::{parse_change, Article, ArticleChange, WriteKind};
pub use event::EventType;
pub use query::{ArticleQuery, Sort, SortKey};
pub use user::{AuthMode, User};

/// One validation problem: which field or query parameter, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field (`title`, `tags[2]`) or query parameter (`page`).
    pub field: String,
    /// What is wrong with it, as a sentence fragment.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Input that failed validation: one entry per problem, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", error.field, error.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}
