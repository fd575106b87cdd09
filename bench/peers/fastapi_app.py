"""FastAPI + async SQLAlchemy (aiosqlite) peer of `articles`, written the way
the FastAPI tutorials do it: Pydantic response models, a session dependency,
HTTPException for 404. Served by uvicorn with uvloop and httptools.

Endpoints: GET /articles?page=&per_page=, GET /articles/{id}, POST /articles.
The database file comes from $PEER_DB; bench/seed.py creates and fills it.
"""
import os
from datetime import datetime, timezone
from typing import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from sqlalchemy import Column, DateTime, ForeignKey, Integer, String, Table, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, joinedload, mapped_column, relationship, selectinload

DB_PATH = os.path.abspath(os.environ.get("PEER_DB", "fastapi.db"))
engine = create_async_engine("sqlite+aiosqlite:///" + DB_PATH)
SessionLocal = async_sessionmaker(engine, expire_on_commit=False)


class Base(DeclarativeBase):
    pass


article_tags = Table(
    "article_tags", Base.metadata,
    Column("article_id", ForeignKey("articles.id"), primary_key=True),
    Column("tag_id", ForeignKey("tags.id"), primary_key=True),
)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Tag(Base):
    __tablename__ = "tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)


class Article(Base):
    __tablename__ = "articles"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    content: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    author: Mapped[User | None] = relationship()
    tags: Mapped[list[Tag]] = relationship(secondary=article_tags)


# ---- schemas ---------------------------------------------------------------

class AuthorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str


class ArticleIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    content: str = Field(min_length=1)
    tags: list[str] = Field(default_factory=list, max_length=20)


class ArticleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    title: str
    content: str
    tags: list[str]
    author: AuthorOut | None
    created_at: datetime
    updated_at: datetime

    @field_validator("tags", mode="before")
    @classmethod
    def tag_names(cls, tags):
        return sorted(t.name if isinstance(t, Tag) else t for t in tags)

    @field_serializer("created_at", "updated_at")
    def rfc3339(self, dt: datetime) -> str:
        return dt.isoformat(timespec="milliseconds") + "Z"


# ---- app -------------------------------------------------------------------

app = FastAPI(title="articles (FastAPI peer)")


async def get_session() -> AsyncIterator[AsyncSession]:
    async with SessionLocal() as session:
        yield session


def with_relations(stmt):
    # Eager loading is mandatory with async SQLAlchemy (no lazy loads).
    return stmt.options(joinedload(Article.author), selectinload(Article.tags))


@app.get("/articles", response_model=list[ArticleOut])
async def list_articles(response: Response,
                        page: int = Query(1, ge=1),
                        per_page: int = Query(20, ge=1, le=100),
                        session: AsyncSession = Depends(get_session)):
    total = await session.scalar(select(func.count()).select_from(Article))
    response.headers["X-Total-Count"] = str(total)
    stmt = with_relations(select(Article)).order_by(
        Article.created_at.desc(), Article.id.desc()
    ).offset((page - 1) * per_page).limit(per_page)
    return (await session.scalars(stmt)).all()


@app.get("/articles/{article_id}", response_model=ArticleOut)
async def get_article(article_id: int, session: AsyncSession = Depends(get_session)):
    article = (await session.scalars(
        with_relations(select(Article)).where(Article.id == article_id))).first()
    if article is None:
        raise HTTPException(status_code=404, detail="Article not found")
    return article


@app.post("/articles", response_model=ArticleOut, status_code=201)
async def create_article(body: ArticleIn, response: Response,
                         session: AsyncSession = Depends(get_session)):
    names = sorted(set(body.tags))
    # No auth in the peers: every article belongs to the seeded user, loaded
    # the way a current-user dependency would load it.
    author = await session.get(User, 1)
    existing = {t.name: t for t in await session.scalars(select(Tag).where(Tag.name.in_(names)))}
    tags = [existing.get(n) or Tag(name=n) for n in names]
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    article = Article(title=body.title, content=body.content, author=author,
                      tags=tags, created_at=now, updated_at=now)
    session.add(article)
    await session.commit()
    response.headers["Location"] = f"/articles/{article.id}"
    return article
