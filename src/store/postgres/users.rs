//! User and token SQL for PostgreSQL.

use postgres::{GenericClient, Row};

use super::{Db, PgStore};
use crate::model::User;
use crate::store::{StoreError, Users};
use crate::util::time::now_millis;

const INSERT_USER: &str = "INSERT INTO users (username, created_at) VALUES ($1, $2) RETURNING id";

const INSERT_TOKEN: &str = "INSERT INTO tokens (hash, user_id, created_at) VALUES ($1, $2, $3)";

const USER_BY_NAME: &str =
    "SELECT id, username, created_at FROM users WHERE lower(username) = lower($1)";

const USER_BY_TOKEN: &str = "SELECT u.id, u.username, u.created_at \
     FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1";

const DELETE_TOKENS: &str = "DELETE FROM tokens WHERE user_id = $1";

impl Users for PgStore {
    fn create_user(&self, username: &str, token_hash: &[u8]) -> Result<User, StoreError> {
        let created = self.write(|db| {
            if find_by_name(db, username)?.is_some() {
                return Err(StoreError::UsernameTaken(username.to_owned()));
            }
            let now = now_millis();
            let id: i64 = db.query_one(INSERT_USER, &[&username, &now])?.try_get(0)?;
            db.execute(INSERT_TOKEN, &[&token_hash, &id, &now])?;
            Ok(User {
                id,
                username: username.to_owned(),
                created_at: now,
            })
        });
        match created {
            // The same name added through another replica at this moment.
            Err(StoreError::Duplicate(_)) => Err(StoreError::UsernameTaken(username.to_owned())),
            other => other,
        }
    }

    fn add_token(&self, username: &str, token_hash: &[u8]) -> Result<Option<User>, StoreError> {
        self.write(|db| {
            let Some(user) = find_by_name(db, username)? else {
                return Ok(None);
            };
            db.execute(INSERT_TOKEN, &[&token_hash, &user.id, &now_millis()])?;
            Ok(Some(user))
        })
    }

    fn revoke_tokens(&self, username: &str) -> Result<Option<(User, usize)>, StoreError> {
        self.write(|db| {
            let Some(user) = find_by_name(db, username)? else {
                return Ok(None);
            };
            let revoked = db.execute(DELETE_TOKENS, &[&user.id])?;
            Ok(Some((user, revoked as usize)))
        })
    }

    fn user_by_token(&self, token_hash: &[u8]) -> Result<Option<User>, StoreError> {
        self.read(|db| {
            db.query_opt(USER_BY_TOKEN, &[&token_hash])?
                .as_ref()
                .map(read_user)
                .transpose()
        })
    }
}

fn find_by_name<C: GenericClient>(
    db: &mut Db<'_, C>,
    username: &str,
) -> Result<Option<User>, StoreError> {
    db.query_opt(USER_BY_NAME, &[&username])?
        .as_ref()
        .map(read_user)
        .transpose()
}

fn read_user(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get(0)?,
        username: row.try_get(1)?,
        created_at: row.try_get(2)?,
    })
}
