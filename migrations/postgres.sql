-- The PostgreSQL schema of `articles`, embedded in the binary when it is
-- built with the `postgres` feature.
--
-- The same rule as schema.sql (at the top of the project): append-only; each "-- migration N: ..."
-- section runs once, in order, in its own transaction, and the
-- `articles_schema` row records the last one applied. Migration N here makes
-- the same tables as migration N in schema.sql, so both backends share one
-- version number.
--
-- Timestamps are BIGINT milliseconds since the Unix epoch, UTC, set by the
-- service. Text that is sorted or compared uses the "C" collation: byte
-- order, as SQLite's BINARY, so both backends list in the same order.

-- migration 1: articles, their tags and a full-text index
CREATE EXTENSION IF NOT EXISTS unaccent;

-- unaccent() is only STABLE (its dictionary could change), and an index or a
-- generated column needs an IMMUTABLE function: this wrapper names the
-- dictionary explicitly, the usual way to promise that.
CREATE FUNCTION articles_fold(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    RETURN unaccent('unaccent'::regdictionary, $1);

CREATE TABLE articles (
    -- An identity is never reused, even after a delete.
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title      TEXT   COLLATE "C" NOT NULL,
    content    TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- Title and content, case-folded and without diacritics, as SQLite's
    -- FTS5 `unicode61 remove_diacritics 2` tokenizer sees them.
    search     tsvector GENERATED ALWAYS AS (
                   to_tsvector('simple', articles_fold(title))
                   || to_tsvector('simple', articles_fold(content))
               ) STORED
);

-- One index per listing order, each ending in id (the tie breaker).
CREATE INDEX articles_by_created ON articles (created_at, id);
CREATE INDEX articles_by_updated ON articles (updated_at, id);
CREATE INDEX articles_by_title   ON articles (title, id);
CREATE INDEX articles_search     ON articles USING gin (search);

CREATE TABLE article_tags (
    article_id BIGINT NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
    tag        TEXT   COLLATE "C" NOT NULL,
    PRIMARY KEY (article_id, tag)
);

CREATE INDEX article_tags_by_tag ON article_tags (tag, article_id);

-- migration 2: users, their tokens, and authorship
CREATE TABLE users (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username   TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Usernames are ASCII ([A-Za-z0-9_.-]): unique case-insensitively.
CREATE UNIQUE INDEX users_by_name ON users (lower(username));

-- Only the SHA-256 of a token is stored; the token itself is shown once.
CREATE TABLE tokens (
    hash       BYTEA  PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL
);

CREATE INDEX tokens_by_user ON tokens (user_id);

-- NULL for an anonymous article.
ALTER TABLE articles ADD COLUMN author_id BIGINT REFERENCES users (id);

CREATE INDEX articles_by_author ON articles (author_id, created_at, id);

-- migration 3: responses saved for retries of POST /articles with an Idempotency-Key
CREATE TABLE idempotency_keys (
    -- The writer's user id; 0 for anonymous writers.
    scope           BIGINT  NOT NULL,
    idempotency_key TEXT    NOT NULL,
    fingerprint     BYTEA   NOT NULL,
    created_at      BIGINT  NOT NULL,
    status          INTEGER NOT NULL,
    headers         TEXT    NOT NULL,
    body            BYTEA   NOT NULL,
    -- Two replicas saving one key at once: the second fails here, and its
    -- whole transaction (the article included) rolls back.
    PRIMARY KEY (scope, idempotency_key)
);

CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- migration 4: the webhook outbox: events and their deliveries
CREATE TABLE webhook_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_id TEXT   NOT NULL UNIQUE,
    type       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    body       TEXT   NOT NULL
);

CREATE INDEX webhook_events_by_age ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    event_id        BIGINT  NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    url             TEXT    NOT NULL,
    state           TEXT    NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'gone', 'expired')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When the next attempt is due, or when a dispatcher's claim on it ends.
    next_attempt_at BIGINT  NOT NULL,
    created_at      BIGINT  NOT NULL,
    done_at         BIGINT,
    PRIMARY KEY (event_id, url)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (url, next_attempt_at)
    WHERE state = 'pending';

CREATE INDEX webhook_deliveries_backlog ON webhook_deliveries (created_at)
    WHERE state = 'pending';

-- migration 5: each article's tags also in its own row (SQLite only)
-- Nothing to do here: PostgreSQL reads an article's tags with it, as an
-- array, cheaply enough. The version moves with SQLite's.
SELECT 1;

-- migration 6: new articles enter the full-text index once per transaction (SQLite only)
-- Nothing to do here: PostgreSQL's index is not SQLite's FTS5.
SELECT 1;

-- migration 7: the change feed: every change is an event, kept for the feed
-- As in schema.sql. The identity's values are not commit order on their own
-- (a transaction that took 10 can commit after one that took 11): every
-- transaction that records an event first takes the transaction-scoped
-- advisory lock FEED_LOCK (src/store/postgres/outbox.rs), held to its commit,
-- so events are numbered and committed one transaction at a time, in order.
ALTER TABLE webhook_events ADD COLUMN match_tags TEXT;
ALTER TABLE webhook_events ADD COLUMN match_author TEXT;
-- Only an event with deliveries needs a `webhook-id`.
ALTER TABLE webhook_events ALTER COLUMN webhook_id DROP NOT NULL;

CREATE TABLE feed_horizon (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    horizon BIGINT  NOT NULL
);
-- Starts at the newest event there is: earlier events were written only
-- while webhooks were configured, so a follower from 0 gets a reset.
INSERT INTO feed_horizon (id, horizon)
    VALUES (1, coalesce((SELECT max(id) FROM webhook_events), 0));
