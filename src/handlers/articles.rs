//! `/articles` and `/articles/{id}`.

use crate::article::{parse_change, ArticleChange, WriteKind};
use crate::auth;
use crate::error::ApiError;
use crate::listing::{link_header, ArticleQuery};
use crate::request::Req;
use crate::response::Reply;
use crate::App;

/// The `detail` of every 404 for an article.
pub const NOT_FOUND: &str = "Article not found";

/// `GET /articles`: one page, newest first by default, with `X-Total-Count`
/// and `Link`.
pub fn list(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let query = ArticleQuery::parse(&req.query)?;
    let (articles, total) = app.store.list_articles(&query)?;
    Ok(Reply::json(200, &articles)
        .header("X-Total-Count", total.to_string())
        .header("Link", link_header(&req.path, &req.query, &query, total)))
}

/// `POST /articles`: 201 with `Location`; the author is the token's user.
pub fn create(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    auth::writer(req.user.as_ref(), app.config.auth)?;
    let change = read_change(req, WriteKind::Create)?;
    let article = app.store.create_article(&change, req.user.as_ref())?;
    Ok(Reply::json(201, &article).header("Location", format!("/articles/{}", article.id)))
}

/// `GET /articles/{id}`.
pub fn show(app: &App, _req: &mut Req<'_>, id: i64) -> Result<Reply, ApiError> {
    let article = app
        .store
        .article(id)?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(Reply::json(200, &article))
}

/// `PUT /articles/{id}`: title and content required, tags default to `[]`.
pub fn replace(app: &App, req: &mut Req<'_>, id: i64) -> Result<Reply, ApiError> {
    update(app, req, id, WriteKind::Replace)
}

/// `PATCH /articles/{id}`: only the fields given change.
pub fn patch(app: &App, req: &mut Req<'_>, id: i64) -> Result<Reply, ApiError> {
    update(app, req, id, WriteKind::Patch)
}

/// `DELETE /articles/{id}`: 204. Only the author may delete an article
/// that has one.
pub fn delete(app: &App, req: &mut Req<'_>, id: i64) -> Result<Reply, ApiError> {
    let user = auth::writer(req.user.as_ref(), app.config.auth)?;
    app.store
        .delete_article(id, |current| auth::may_modify(user, current))?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(Reply::empty(204))
}

/// PUT and PATCH. The body is read before the write transaction (a slow
/// client must not hold the writer), but its errors come after the checks
/// the contract puts first: 401, then 403 and 404 (against the article as it
/// is inside the transaction), then the body.
fn update(app: &App, req: &mut Req<'_>, id: i64, kind: WriteKind) -> Result<Reply, ApiError> {
    auth::writer(req.user.as_ref(), app.config.auth)?;
    let change = read_change(req, kind);
    let user = req.user.as_ref();
    let article = app
        .store
        .update_article(id, |current| {
            auth::may_modify(user, current)?;
            change
        })?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(Reply::json(200, &article))
}

fn read_change(req: &mut Req<'_>, kind: WriteKind) -> Result<ArticleChange, ApiError> {
    let body = req.json_object()?;
    parse_change(&body, kind)
}
