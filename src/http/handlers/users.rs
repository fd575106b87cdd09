//! `/me`.

use crate::http::auth;
use crate::http::error::ApiError;
use crate::http::request::Req;
use crate::http::response::Reply;
use crate::http::App;

/// `GET /me`: the user behind the bearer token.
pub fn me(_app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let user = req.user.as_ref().ok_or_else(auth::token_required)?;
    Ok(Reply::json(200, user))
}
