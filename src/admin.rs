//! The administrative commands: `user add`, `token new`, `token revoke`.
//! They open the database like the server does, so they work while a server
//! runs on the same file (writes wait for its lock).

use std::fmt;

use crate::model::user::{new_token, token_hash};
use crate::store::{self, Store, StoreError};

/// Why an administrative command failed.
#[derive(Debug)]
pub enum AdminError {
    /// No user has that name.
    UnknownUser(String),
    /// The name is taken (in any case).
    NameTaken(String),
    /// The operating system gave no randomness.
    Randomness(String),
    /// The database failed.
    Store(StoreError),
}

impl fmt::Display for AdminError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminError::UnknownUser(name) => write!(f, "no user is named '{name}'"),
            AdminError::NameTaken(name) => write!(f, "the username '{name}' is taken"),
            AdminError::Randomness(err) => write!(f, "no randomness from the OS: {err}"),
            AdminError::Store(err) => write!(f, "{err}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<StoreError> for AdminError {
    fn from(err: StoreError) -> AdminError {
        AdminError::Store(err)
    }
}

fn open(db: &str) -> Result<Store, AdminError> {
    Ok(Store::open(db, store::Options::default())?)
}

fn token() -> Result<String, AdminError> {
    new_token().map_err(|err| AdminError::Randomness(err.to_string()))
}

/// Applies pending migrations to `db`; returns the schema version before
/// and after.
pub fn migrate(db: &str) -> Result<(u32, u32), AdminError> {
    Ok(Store::migrate(db)?)
}

/// Creates user `name`; returns what to print, the token on the last line.
pub fn user_add(db: &str, name: &str) -> Result<String, AdminError> {
    let token = token()?;
    let user = match open(db)?.create_user(name, &token_hash(&token)) {
        Err(StoreError::UsernameTaken(_)) => return Err(AdminError::NameTaken(name.to_owned())),
        other => other?,
    };
    Ok(format!(
        "created user '{}' (id {}); its token, shown only this once:\n{token}",
        user.username, user.id
    ))
}

/// Makes another token for user `name`; returns what to print, the token on
/// the last line.
pub fn token_new(db: &str, name: &str) -> Result<String, AdminError> {
    let token = token()?;
    let user = open(db)?
        .add_token(name, &token_hash(&token))?
        .ok_or_else(|| AdminError::UnknownUser(name.to_owned()))?;
    Ok(format!(
        "new token for '{}', shown only this once:\n{token}",
        user.username
    ))
}

/// Revokes every token of user `name`; returns what to print.
pub fn token_revoke(db: &str, name: &str) -> Result<String, AdminError> {
    let (user, count) = open(db)?
        .revoke_tokens(name)?
        .ok_or_else(|| AdminError::UnknownUser(name.to_owned()))?;
    Ok(format!("revoked {count} token(s) of '{}'", user.username))
}
