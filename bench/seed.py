"""Seed data for the benchmark: the same 1,000 articles for every contender.

    seed.py sqlite FILE          create the Python peers' schema in FILE and fill it
    seed.py http URL [TOKEN]     POST the articles to a running `articles`
    seed.py dbjson FILE          write them as a json-server db.json, in the
                                 API's shape (also what `articles import`
                                 reads: the axum peers' databases are made so)

The articles are deterministic (fixed random seed): ~500 characters of content
each, 2 to 4 tags from a small vocabulary, all by one user ("bench").
"""
import http.client
import json
import random
import sqlite3
import sys
import urllib.parse
from datetime import datetime, timedelta

N_ARTICLES = 1000
VOCABULARY = ["python", "rust", "web", "sql", "http", "api", "performance",
              "testing", "design", "ops", "security", "tutorial"]
WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
         "tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam "
         "quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo").split()


def articles():
    rng = random.Random(20261124)
    for i in range(1, N_ARTICLES + 1):
        words = []
        while sum(len(w) + 1 for w in words) < 500:
            words.append(rng.choice(WORDS))
        content = " ".join(words).capitalize()[:500] + "."
        tags = sorted(rng.sample(VOCABULARY, rng.randint(2, 4)))
        yield {"title": f"Article {i}: {' '.join(rng.sample(WORDS, 4))}",
               "content": content, "tags": tags}


SCHEMA = """
PRAGMA journal_mode = WAL;
CREATE TABLE users (
    id INTEGER PRIMARY KEY, username VARCHAR(40) NOT NULL UNIQUE,
    created_at DATETIME NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY, name VARCHAR(50) NOT NULL UNIQUE);
CREATE TABLE articles (
    id INTEGER PRIMARY KEY, title VARCHAR(200) NOT NULL, content TEXT NOT NULL,
    author_id INTEGER REFERENCES users(id),
    created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL);
CREATE INDEX ix_articles_created_at ON articles (created_at);
CREATE TABLE article_tags (
    article_id INTEGER NOT NULL REFERENCES articles(id),
    tag_id INTEGER NOT NULL REFERENCES tags(id),
    PRIMARY KEY (article_id, tag_id));
"""


def sa_datetime(dt):
    # The text format SQLAlchemy's SQLite DateTime type reads and writes.
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def seed_sqlite(path):
    # WAL (set once, persistent in the file) as `articles` uses it too: the
    # peers get the same journal mode without any code of their own.
    con = sqlite3.connect(path)
    con.executescript(SCHEMA)
    start = datetime(2026, 1, 1)
    con.execute("INSERT INTO users (id, username, created_at) VALUES (1, 'bench', ?)",
                (sa_datetime(start),))
    con.executemany("INSERT INTO tags (id, name) VALUES (?, ?)",
                    list(enumerate(VOCABULARY, 1)))
    tag_id = {name: i for i, name in enumerate(VOCABULARY, 1)}
    for i, a in enumerate(articles(), 1):
        ts = sa_datetime(start + timedelta(minutes=i))
        con.execute("INSERT INTO articles (id, title, content, author_id, created_at,"
                    " updated_at) VALUES (?, ?, ?, 1, ?, ?)",
                    (i, a["title"], a["content"], ts, ts))
        con.executemany("INSERT INTO article_tags VALUES (?, ?)",
                        [(i, tag_id[t]) for t in a["tags"]])
    con.commit()
    con.close()


def rfc3339(dt):
    return dt.isoformat(timespec="milliseconds") + "Z"


def seeded_time(i):
    """created_at (and updated_at) of article i in the peers' data, as the
    API writes it: seed_sqlite's time of the same article."""
    return rfc3339(datetime(2026, 1, 1) + timedelta(minutes=i))


def seed_dbjson(path):
    # The same articles, ids and times as seed_sqlite, in the shape GET
    # /articles/{id} answers (keys in articles' order).
    rows = []
    for i, a in enumerate(articles(), 1):
        ts = seeded_time(i)
        rows.append({"id": i, "title": a["title"], "content": a["content"], "tags": a["tags"],
                     "author": {"id": 1, "username": "bench"},
                     "created_at": ts, "updated_at": ts})
    with open(path, "w") as f:
        json.dump({"articles": rows}, f, ensure_ascii=False, indent=2)


def seed_http(url, token=None):
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)  # keep-alive
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    for a in articles():
        conn.request("POST", "/articles", body=json.dumps(a), headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 201:
            sys.exit(f"seeding failed: POST /articles -> {resp.status} {body[:300]!r}")


if __name__ == "__main__":
    if sys.argv[1] == "sqlite":
        seed_sqlite(sys.argv[2])
    elif sys.argv[1] == "dbjson":
        seed_dbjson(sys.argv[2])
    elif sys.argv[1] == "http":
        seed_http(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    else:
        sys.exit(__doc__)
