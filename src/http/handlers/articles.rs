//! `/articles` and `/articles/{id}`.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::http::auth;
use crate::http::conditional::{etag, Preconditions, Verdict};
use crate::http::error::ApiError;
use crate::http::idempotency;
use crate::http::pagination::link_header;
use crate::http::request::Req;
use crate::http::response::{Reply, JSON};
use crate::http::App;
use crate::model::ArticleQuery;
use crate::model::User;
use crate::model::{parse_change, Article, ArticleChange, FieldError, WriteKind};
use crate::store::{Creation, KeyedRequest, SavedResponse};

/// The `detail` of every 404 for an article.
pub const NOT_FOUND: &str = "Article not found";

/// `GET /articles`: one page, newest first by default, with `X-Total-Count`
/// and `Link`.
pub fn list(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let query = ArticleQuery::parse(&req.query)?;
    let listing = app.store.list_articles(&query)?;
    Ok(
        Reply::with_body(200, JSON, Article::list_to_json(&listing.articles))
            .header("X-Total-Count", listing.total.to_string())
            .header(
                "Link",
                link_header(&req.path, &req.query, &query, listing.total),
            )
            .header("Events-Seq", listing.events_seq.to_string()),
    )
}

/// `POST /articles`: 201 with `Location` and `ETag`; the author is the
/// token's user. With an `Idempotency-Key`, see `create_once`.
pub fn create(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    auth::writer(req.user.as_ref(), app.config.auth)?;
    let key = idempotency_key(req)?;
    let body = req.json_object()?;
    let user = req.user.as_ref();
    match key {
        Some(key) => create_once(app, user, &key, &body),
        None => {
            let change = parse_change(&body, WriteKind::Create)?;
            Ok(created(&app.store.create_article(&change, user)?))
        }
    }
}

/// `GET /articles/{id}` (and HEAD): 200 with `ETag`, or 304 when
/// `If-None-Match` matches it.
pub fn show(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let id = req.id;
    let article = app
        .store
        .article(id)?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    let tag = etag(&article);
    let fields = ConditionFields::of(req);
    match fields.parse().evaluate(&tag, true) {
        Verdict::Proceed => Ok(article_reply(200, &article, tag)),
        Verdict::NotModified => Ok(Reply::empty(304).header("ETag", tag)),
        Verdict::Failed(detail) => Err(ApiError::PreconditionFailed(detail)),
    }
}

/// `PUT /articles/{id}`: title and content required, tags default to `[]`.
pub fn replace(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    update(app, req, WriteKind::Replace)
}

/// `PATCH /articles/{id}`: only the fields given change.
pub fn patch(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    update(app, req, WriteKind::Patch)
}

/// `DELETE /articles/{id}`: 204. Only the author may delete an article
/// that has one; `If-Match` is checked against the article as it is inside
/// the write transaction.
pub fn delete(app: &App, req: &mut Req<'_>) -> Result<Reply, ApiError> {
    let id = req.id;
    let user = auth::writer(req.user.as_ref(), app.config.auth)?;
    let fields = ConditionFields::of(req);
    let conditions = fields.parse();
    app.store
        .delete_article(id, |current| {
            auth::may_modify(user, current)?;
            check_write(&conditions, current)
        })?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(Reply::empty(204))
}

/// PUT and PATCH. The body is read before the write transaction (a slow
/// client must not hold the writer), but its errors come after the checks
/// the contract puts first: 401, then 403 and 404, then 412, all against the
/// article as it is inside the transaction (so two writers with the same
/// `If-Match` cannot both win), then the body.
fn update(app: &App, req: &mut Req<'_>, kind: WriteKind) -> Result<Reply, ApiError> {
    let id = req.id;
    auth::writer(req.user.as_ref(), app.config.auth)?;
    let change = read_change(req, kind);
    let fields = ConditionFields::of(req);
    let conditions = fields.parse();
    let user = req.user.as_ref();
    let article = app
        .store
        .update_article(id, |current| {
            auth::may_modify(user, current)?;
            check_write(&conditions, current)?;
            change
        })?
        .ok_or(ApiError::NotFound(NOT_FOUND))?;
    Ok(article_reply(200, &article, etag(&article)))
}

/// `POST /articles` with an `Idempotency-Key`: 409 while a request with the
/// same key (and writer) is in progress; otherwise the first response again
/// if the key was used in the last 24 hours, with the same body (422 with a
/// different one); otherwise a creation whose response is saved with it.
fn create_once(
    app: &App,
    user: Option<&User>,
    key: &str,
    body: &Map<String, Value>,
) -> Result<Reply, ApiError> {
    let scope = user.map_or(idempotency::ANONYMOUS_SCOPE, |user| user.id);
    let _claim = app.in_flight.claim(scope, key).ok_or(ApiError::Conflict(
        "A request with this Idempotency-Key is still in progress; retry it later",
    ))?;
    let request = KeyedRequest {
        scope,
        key,
        fingerprint: idempotency::fingerprint(body),
    };
    let creation = app.store.create_article_once(
        &request,
        user,
        || parse_change(body, WriteKind::Create).map_err(ApiError::from),
        |article| SavedResponse::of(created(article)),
    )?;
    match creation {
        Creation::Created(response) => Ok(response.into_reply()),
        Creation::Earlier(saved) if saved.fingerprint == request.fingerprint => Ok(saved
            .response
            .into_reply()
            .header("Idempotency-Replayed", "true")),
        Creation::Earlier(_) => Err(ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "was already used with a different request body",
        )])),
    }
}

/// The 201 answer to a creation.
fn created(article: &Article) -> Reply {
    article_reply(201, article, etag(article))
        .header("Location", format!("/articles/{}", article.id))
}

/// An article as the body, with its `ETag`.
fn article_reply(status: u16, article: &Article, tag: String) -> Reply {
    Reply::with_body(status, JSON, article.to_json()).header("ETag", tag)
}

/// The request's `Idempotency-Key`, if it has one: 400 unless it is 1 to
/// 255 visible ASCII characters.
fn idempotency_key(req: &Req<'_>) -> Result<Option<String>, ApiError> {
    match req.header("Idempotency-Key") {
        None => Ok(None),
        Some(key) if idempotency::valid_key(key) => Ok(Some(key.to_owned())),
        Some(_) => Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )),
    }
}

/// A request's `If-Match` and `If-None-Match`, each sent on one line or on
/// several (read as one list, RFC 9110 section 5.3).
struct ConditionFields<'r>(Option<Cow<'r, str>>, Option<Cow<'r, str>>);

impl<'r> ConditionFields<'r> {
    fn of(req: &'r Req<'_>) -> ConditionFields<'r> {
        ConditionFields(
            req.list_header("If-Match"),
            req.list_header("If-None-Match"),
        )
    }

    fn parse(&self) -> Preconditions<'_> {
        Preconditions::parse(self.0.as_deref(), self.1.as_deref())
    }
}

/// 412 unless the preconditions hold for `current`, the article as it is
/// inside the write transaction.
fn check_write(conditions: &Preconditions<'_>, current: &Article) -> Result<(), ApiError> {
    match conditions.evaluate(&etag(current), false) {
        Verdict::Failed(detail) => Err(ApiError::PreconditionFailed(detail)),
        // A write never gets NotModified: a matching If-None-Match fails.
        Verdict::Proceed | Verdict::NotModified => Ok(()),
    }
}

fn read_change(req: &mut Req<'_>, kind: WriteKind) -> Result<ArticleChange, ApiError> {
    let body = req.json_object()?;
    Ok(parse_change(&body, kind)?)
}
