"""Flask + Flask-SQLAlchemy peer of `articles`, written the way the Flask
tutorials do it: declarative models, db.paginate, jsonify. Served by gunicorn
sync workers (see bench/run.sh).

Endpoints: GET /articles?page=&per_page=, GET /articles/<id>, POST /articles.
The database file comes from $PEER_DB; bench/seed.py creates and fills it.
"""
import os
from datetime import datetime, timezone

from flask import Flask, jsonify, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import joinedload, selectinload

app = Flask(__name__)
app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.abspath(
    os.environ.get("PEER_DB", "flask.db"))
db = SQLAlchemy(app)

article_tags = db.Table(
    "article_tags",
    db.Column("article_id", db.Integer, db.ForeignKey("articles.id"), primary_key=True),
    db.Column("tag_id", db.Integer, db.ForeignKey("tags.id"), primary_key=True),
)


class User(db.Model):
    __tablename__ = "users"
    id = db.Column(db.Integer, primary_key=True)
    username = db.Column(db.String(40), unique=True, nullable=False)
    created_at = db.Column(db.DateTime, nullable=False)


class Tag(db.Model):
    __tablename__ = "tags"
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), unique=True, nullable=False)


class Article(db.Model):
    __tablename__ = "articles"
    id = db.Column(db.Integer, primary_key=True)
    title = db.Column(db.String(200), nullable=False)
    content = db.Column(db.Text, nullable=False)
    author_id = db.Column(db.Integer, db.ForeignKey("users.id"))
    created_at = db.Column(db.DateTime, nullable=False, index=True)
    updated_at = db.Column(db.DateTime, nullable=False)
    author = db.relationship(User)
    tags = db.relationship(Tag, secondary=article_tags)

    def to_dict(self):
        return {
            "id": self.id,
            "title": self.title,
            "content": self.content,
            "tags": sorted(t.name for t in self.tags),
            "author": {"id": self.author.id, "username": self.author.username}
            if self.author else None,
            "created_at": rfc3339(self.created_at),
            "updated_at": rfc3339(self.updated_at),
        }


def rfc3339(dt):
    return dt.isoformat(timespec="milliseconds") + "Z"


def with_relations(query):
    # Eager-load what to_dict() touches, as the SQLAlchemy docs recommend,
    # rather than one lazy query per article (N+1).
    return query.options(joinedload(Article.author), selectinload(Article.tags))


@app.get("/articles")
def list_articles():
    page = request.args.get("page", 1, type=int)
    per_page = min(request.args.get("per_page", 20, type=int), 100)
    query = with_relations(db.select(Article)).order_by(
        Article.created_at.desc(), Article.id.desc())
    pagination = db.paginate(query, page=page, per_page=per_page, error_out=False)
    response = jsonify([a.to_dict() for a in pagination.items])
    response.headers["X-Total-Count"] = str(pagination.total)
    return response


@app.get("/articles/<int:article_id>")
def get_article(article_id):
    article = db.session.execute(
        with_relations(db.select(Article)).where(Article.id == article_id)
    ).unique().scalar_one_or_none()
    if article is None:
        return jsonify(detail="Article not found"), 404
    return jsonify(article.to_dict())


@app.post("/articles")
def create_article():
    data = request.get_json()
    title, content = data.get("title"), data.get("content")
    names = sorted(set(data.get("tags") or []))
    if not isinstance(title, str) or not title.strip() or len(title) > 200 \
            or not isinstance(content, str) or not content.strip():
        return jsonify(detail="Validation failed"), 422
    # No auth in the peers: every article belongs to the seeded user, loaded
    # the way a login extension would load current_user.
    author = db.session.get(User, 1)
    existing = {t.name: t for t in db.session.scalars(
        db.select(Tag).where(Tag.name.in_(names)))}
    tags = [existing.get(n) or Tag(name=n) for n in names]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    article = Article(title=title, content=content, author=author, tags=tags,
                      created_at=now, updated_at=now)
    db.session.add(article)
    db.session.commit()
    response = jsonify(article.to_dict())
    response.status_code = 201
    response.headers["Location"] = f"/articles/{article.id}"
    return response
