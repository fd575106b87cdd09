//! User and token SQL.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::SqliteStore;
use crate::model::User;
use crate::store::{StoreError, Users};
use crate::util::time::now_millis;

const INSERT_USER: &str = "INSERT INTO users (username, created_at) VALUES (?1, ?2)";

const INSERT_TOKEN: &str = "INSERT INTO tokens (hash, user_id, created_at) VALUES (?1, ?2, ?3)";

const USER_BY_NAME: &str =
    "SELECT id, username, created_at FROM users WHERE username = ?1 COLLATE NOCASE";

const USER_BY_TOKEN: &str = "SELECT u.id, u.username, u.created_at \
     FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?1";

const DELETE_TOKENS: &str = "DELETE FROM tokens WHERE user_id = ?1";

impl Users for SqliteStore {
    fn create_user(&self, username: &str, token_hash: &[u8]) -> Result<User, StoreError> {
        self.short_write(|tx| {
            if find_by_name(tx, username)?.is_some() {
                return Err(StoreError::UsernameTaken(username.to_owned()));
            }
            let now = now_millis();
            tx.prepare_cached(INSERT_USER)?
                .execute(params![username, now])?;
            let user = User {
                id: tx.last_insert_rowid(),
                username: username.to_owned(),
                created_at: now,
            };
            tx.prepare_cached(INSERT_TOKEN)?
                .execute(params![token_hash, user.id, now])?;
            Ok(user)
        })
    }

    fn add_token(&self, username: &str, token_hash: &[u8]) -> Result<Option<User>, StoreError> {
        self.short_write(|tx| {
            let Some(user) = find_by_name(tx, username)? else {
                return Ok(None);
            };
            tx.prepare_cached(INSERT_TOKEN)?
                .execute(params![token_hash, user.id, now_millis()])?;
            Ok(Some(user))
        })
    }

    fn revoke_tokens(&self, username: &str) -> Result<Option<(User, usize)>, StoreError> {
        self.short_write(|tx| {
            let Some(user) = find_by_name(tx, username)? else {
                return Ok(None);
            };
            let revoked = tx.prepare_cached(DELETE_TOKENS)?.execute([user.id])?;
            Ok(Some((user, revoked)))
        })
    }

    fn user_by_token(&self, token_hash: &[u8]) -> Result<Option<User>, StoreError> {
        let conn = self.read()?;
        let user = conn
            .prepare_cached(USER_BY_TOKEN)?
            .query_row([token_hash], read_user)
            .optional()?;
        Ok(user)
    }
}

fn find_by_name(conn: &Connection, username: &str) -> Result<Option<User>, StoreError> {
    Ok(conn
        .prepare_cached(USER_BY_NAME)?
        .query_row([username], read_user)
        .optional()?)
}

fn read_user(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        created_at: row.get(2)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_tokens_and_revocation() {
        let store = SqliteStore::open(":memory:", 1, || {}).unwrap();
        let alice = store.create_user("Alice", b"hash-1").unwrap();
        assert!(matches!(
            store.create_user("alice", b"hash-x"),
            Err(StoreError::UsernameTaken(_))
        ));
        assert_eq!(store.user_by_token(b"hash-1").unwrap(), Some(alice.clone()));
        assert_eq!(
            store.add_token("ALICE", b"hash-2").unwrap(),
            Some(alice.clone())
        );
        assert_eq!(store.user_by_token(b"hash-2").unwrap(), Some(alice.clone()));
        assert_eq!(store.add_token("bob", b"hash-3").unwrap(), None);
        assert_eq!(store.revoke_tokens("alice").unwrap(), Some((alice, 2)));
        assert_eq!(store.user_by_token(b"hash-1").unwrap(), None);
        assert_eq!(store.revoke_tokens("bob").unwrap(), None);
    }
}
