//! What every backend's import shares: users are found once by name (in
//! any case) and counted, an article with a known id is reported rather
//! than added, and an article's author is found or added first. A backend
//! supplies only the rows (`ImportRows`).

use std::collections::HashMap;

use super::{Imported, Importer, StoreError};
use crate::model::import::{ImportedArticle, ImportedUser};

/// The statements of one backend's import, inside its transaction.
pub(crate) trait ImportRows {
    /// The id of the user named `name`, in any case, if there is one.
    fn find_user(&mut self, name: &str) -> Result<Option<i64>, StoreError>;

    /// Adds `user`, with its id if that is free; returns the id it got.
    fn add_user(&mut self, user: &ImportedUser) -> Result<i64, StoreError>;

    /// Whether an article has `id`.
    fn article_exists(&mut self, id: i64) -> Result<bool, StoreError>;

    /// Adds `article`, by the user `author`; returns the id it got.
    fn add_article(
        &mut self,
        article: &ImportedArticle,
        author: Option<i64>,
    ) -> Result<i64, StoreError>;
}

/// The `Importer` over a backend's rows.
pub(crate) struct RowImporter<R> {
    pub(crate) rows: R,
    /// Users by lower-case name, as found or added.
    users: HashMap<String, i64>,
    added: u64,
}

impl<R> RowImporter<R> {
    pub(crate) fn new(rows: R) -> RowImporter<R> {
        RowImporter {
            rows,
            users: HashMap::new(),
            added: 0,
        }
    }
}

impl<R: ImportRows> Importer for RowImporter<R> {
    fn user(&mut self, user: &ImportedUser) -> Result<i64, StoreError> {
        let key = user.username.to_ascii_lowercase();
        if let Some(id) = self.users.get(&key) {
            return Ok(*id);
        }
        let id = match self.rows.find_user(&user.username)? {
            Some(id) => id,
            None => {
                self.added += 1;
                self.rows.add_user(user)?
            }
        };
        self.users.insert(key, id);
        Ok(id)
    }

    fn article(&mut self, article: &ImportedArticle) -> Result<Imported, StoreError> {
        if let Some(id) = article.id {
            if self.rows.article_exists(id)? {
                return Ok(Imported::Exists(id));
            }
        }
        let author = match article.author_user() {
            Some(user) => Some(self.user(&user)?),
            None => None,
        };
        Ok(Imported::Added(self.rows.add_article(article, author)?))
    }

    fn users_added(&self) -> u64 {
        self.added
    }
}
