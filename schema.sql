-- The schema of `articles`, embedded in the binary.
--
-- Append-only: each "-- migration N: ..." section runs once, in order, inside
-- its own transaction, and `PRAGMA user_version` records the last one applied.
-- Never edit a section that has shipped; add a new one below it.
--
-- Timestamps are integers: milliseconds since the Unix epoch, UTC.

-- migration 1: articles, their tags and a full-text index
CREATE TABLE articles (
    -- AUTOINCREMENT so that the id of a deleted article is never reused.
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    title      TEXT    NOT NULL,
    content    TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One index per listing order, each ending in id (the tie breaker), so that a
-- page is read in order from the index instead of sorting the whole table.
CREATE INDEX articles_by_created ON articles (created_at, id);
CREATE INDEX articles_by_updated ON articles (updated_at, id);
CREATE INDEX articles_by_title   ON articles (title, id);

CREATE TABLE article_tags (
    article_id INTEGER NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    tag        TEXT    NOT NULL,
    PRIMARY KEY (article_id, tag)
) WITHOUT ROWID;

-- The `tag` filter starts here.
CREATE INDEX article_tags_by_tag ON article_tags (tag, article_id);

-- Full-text index over title and content; the rows live in `articles`
-- (external content), the triggers below keep the index in step.
CREATE VIRTUAL TABLE articles_fts USING fts5 (
    title, content,
    content = 'articles', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER articles_fts_insert AFTER INSERT ON articles BEGIN
    INSERT INTO articles_fts (rowid, title, content)
    VALUES (new.id, new.title, new.content);
END;

CREATE TRIGGER articles_fts_delete AFTER DELETE ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, content)
    VALUES ('delete', old.id, old.title, old.content);
END;

CREATE TRIGGER articles_fts_update AFTER UPDATE OF title, content ON articles BEGIN
    INSERT INTO articles_fts (articles_fts, rowid, title, content)
    VALUES ('delete', old.id, old.title, old.content);
    INSERT INTO articles_fts (rowid, title, content)
    VALUES (new.id, new.title, new.content);
END;

-- The number of articles, kept by triggers so that the unfiltered listing's
-- X-Total-Count is one row read instead of a scan of the whole table.
CREATE TABLE article_count (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    total    INTEGER NOT NULL
);
INSERT INTO article_count (only_row, total) VALUES (1, 0);

CREATE TRIGGER article_count_insert AFTER INSERT ON articles BEGIN
    UPDATE article_count SET total = total + 1 WHERE only_row = 1;
END;

CREATE TRIGGER article_count_delete AFTER DELETE ON articles BEGIN
    UPDATE article_count SET total = total - 1 WHERE only_row = 1;
END;

-- migration 2: users, their tokens, and authorship
CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    username   TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Usernames are ASCII ([A-Za-z0-9_.-]), so NOCASE is exactly
-- "unique case-insensitively".
CREATE UNIQUE INDEX users_by_name ON users (username COLLATE NOCASE);

-- Only the SHA-256 of a token is stored; the token itself is shown once.
CREATE TABLE tokens (
    hash       BLOB    PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX tokens_by_user ON tokens (user_id);

-- NULL for an anonymous article.
ALTER TABLE articles ADD COLUMN author_id INTEGER REFERENCES users (id);

-- The `author` filter, in the default order.
CREATE INDEX articles_by_author ON articles (author_id, created_at, id);

-- migration 3: responses saved for retries of POST /articles with an Idempotency-Key
CREATE TABLE idempotency_keys (
    -- The writer's user id; 0 for anonymous writers (user ids start at 1).
    -- Not NULL: NULLs are distinct in a UNIQUE constraint, so two anonymous
    -- requests with one key would not collide.
    scope           INTEGER NOT NULL,
    idempotency_key TEXT    NOT NULL,
    -- SHA-256 of the canonical JSON of the request body.
    fingerprint     BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    -- The response, replayed as it was: status, headers (a JSON array of
    -- [name, value] pairs) and body.
    status          INTEGER NOT NULL,
    headers         TEXT    NOT NULL,
    body            BLOB    NOT NULL,
    UNIQUE (scope, idempotency_key)
);

-- Expired keys are pruned oldest first, a few at a time, found by this index
-- and deleted by rowid. (A rowid table on purpose: deleting by a (scope, key)
-- primary key made SQLite search by scope alone, all anonymous keys at once.)
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- migration 4: the webhook outbox: events and their deliveries
-- Written in the same transaction as the change an event reports, so a
-- committed change is never left unannounced (see src/webhooks).
CREATE TABLE webhook_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The `webhook-id` header: the same on every attempt and every URL.
    webhook_id TEXT    NOT NULL UNIQUE,
    type       TEXT    NOT NULL,
    -- The time of the change (the body's `timestamp`).
    created_at INTEGER NOT NULL,
    -- The JSON body, built at commit time and never changed.
    body       TEXT    NOT NULL
);

-- Pruning finds old events by age.
CREATE INDEX webhook_events_by_age ON webhook_events (created_at);

-- One row per (event, URL configured when the change committed).
CREATE TABLE webhook_deliveries (
    event_id        INTEGER NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    url             TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'gone', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When the next attempt is due (pending rows only).
    next_attempt_at INTEGER NOT NULL,
    -- The event's time, copied: the 24 hours of retries count from it.
    created_at      INTEGER NOT NULL,
    -- When the delivery stopped being pending.
    done_at         INTEGER,
    PRIMARY KEY (event_id, url)
) WITHOUT ROWID;

-- Pending rows only: the dispatcher's "what is due for this URL", in order.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, next_attempt_at)
    WHERE state = 'pending';

-- Pending rows only: the backlog gauges (count, oldest) read from the index.
CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (created_at)
    WHERE state = 'pending';

-- migration 5: each article's tags also in its own row
-- Joined by U+001F (validation keeps control characters out of tags), NULL
-- for none, and written with every change of the article's tags. Reading an
-- article is then one row: its tags were a correlated subquery over
-- article_tags per article, about a third of the time of a page. The table
-- stays the index of the `tag` filter.
ALTER TABLE articles ADD COLUMN tags TEXT;
UPDATE articles SET tags =
    (SELECT group_concat(tag, char(31)) FROM article_tags WHERE article_id = articles.id);

-- migration 6: new articles enter the full-text index once per transaction
-- The insert trigger indexed each article in its own write's savepoint, and
-- FTS5 writes its pending index to disk at every savepoint: per article, a
-- new index segment and more pages to commit (POST +40 % without it). The
-- store now indexes the articles a transaction created in one statement just
-- before it commits, and before any update or delete in it (see
-- src/store/sqlite/batch.rs). Updates and deletes keep their triggers.
DROP TRIGGER articles_fts_insert;

-- migration 7: the change feed: every change is an event, kept for the feed
-- Events were written only when webhooks were configured; now every create,
-- update and delete writes one, in the change's own transaction, and its id
-- is the change's `seq`. The events table is rebuilt so that this costs
-- little on every write: each table or index a commit touches is more pages
-- written (the three removed cost 13 % of a POST between them):
-- - no AUTOINCREMENT, whose sqlite_sequence row was updated by every insert.
--   The rowid alone is one past the largest id in the table, and pruning
--   never deletes the row with the largest id (src/store/sqlite/outbox.rs),
--   so ids strictly increase and are never reused; one writer, so they are
--   in commit order;
-- - no UNIQUE index on webhook_id: random 128-bit values, never looked up,
--   and made only for an event that has deliveries;
-- - no index by age: pruning walks the oldest ids, whose ages follow them.
-- The feed filters by tag and author as they were before or after the
-- change: both kept here (tags joined by U+001F, the author's username in
-- lower case, NULL for none).

-- The feed's horizon: the newest seq that is no longer kept (pruned, or
-- passed over by an import). A follower behind it has missed changes.
-- Starts at the newest event there is: the events before this migration
-- were written only while webhooks were configured, so they are not every
-- change, and a follower from 0 must get a reset rather than that partial
-- history. (The newest row stays as the largest id, so no id is reused;
-- pending deliveries still go out.)
CREATE TABLE feed_horizon (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    horizon INTEGER NOT NULL
);
INSERT INTO feed_horizon (id, horizon)
    VALUES (1, coalesce((SELECT max(id) FROM webhook_events), 0));

-- Renamed first: the deliveries' reference follows its table's new name,
-- and both old tables go once their rows are copied.
ALTER TABLE webhook_deliveries RENAME TO webhook_deliveries_v6;
ALTER TABLE webhook_events RENAME TO webhook_events_v6;

CREATE TABLE webhook_events (
    id           INTEGER PRIMARY KEY,
    -- The `webhook-id` header: the same on every attempt and every URL;
    -- NULL for an event recorded with no webhook configured.
    webhook_id   TEXT,
    type         TEXT    NOT NULL,
    -- The time of the change (the body's `timestamp`).
    created_at   INTEGER NOT NULL,
    -- The JSON body, built at commit time and never changed.
    body         TEXT    NOT NULL,
    match_tags   TEXT,
    match_author TEXT
);
INSERT INTO webhook_events (id, webhook_id, type, created_at, body)
    SELECT id, webhook_id, type, created_at, body FROM webhook_events_v6;

CREATE TABLE webhook_deliveries (
    event_id        INTEGER NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    url             TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'gone', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    done_at         INTEGER,
    PRIMARY KEY (event_id, url)
) WITHOUT ROWID;
INSERT INTO webhook_deliveries
    (event_id, url, state, attempts, next_attempt_at, created_at, done_at)
    SELECT event_id, url, state, attempts, next_attempt_at, created_at, done_at
    FROM webhook_deliveries_v6;

DROP TABLE webhook_deliveries_v6;
DROP TABLE webhook_events_v6;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (created_at)
    WHERE state = 'pending';
