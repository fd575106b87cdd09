#!/usr/bin/env bash
# Benchmark `articles` (on SQLite, and on PostgreSQL as `articles-pg`)
# against the same API written with axum (+ rusqlite as a performance-minded
# engineer would: "axum"; + sqlx the idiomatic way: "axum-sqlx"), the usual
# Python ways (Flask + gunicorn, FastAPI + uvicorn), json-server 0.17 over a
# db.json, and a bare tiny_http_fork server that answers a fixed body (the
# "ceiling" of the HTTP layer).
#
#   bash bench/run.sh     # ~10 minutes of measuring (at most ~14.5 in all),
#                         # after the builds (minutes more on a fresh machine)
#
# Knobs (environment): DURATION (wrk -d, default 5s), RUNS (per workload,
# default 3), RUNS_PG (per workload for articles-pg, default RUNS), WRK_THREADS
# (default 1), SKIP_BUILD=1 (reuse existing binaries; a missing one is still
# built), CONTENDERS (default "articles articles-pg axum axum-sqlx fastapi
# flask json-server ceiling"), AXUM_SQLX_RUNTIME (tokio flavour of axum-sqlx:
# multi, the faster on one core, or current), IDLE_WAIT (seconds to wait
# for the CPUs to go quiet before each contender, default 30), DISTURBED
# (default 10: a run where other processes took more than this % of the
# server's or wrk's core is repeated).
#
# Fairness rules: every server under test is pinned to CPU 0 and wrk to CPU 1
# (this is a 2-core machine), every contender holds the same 1,000 seeded
# articles, and all traffic goes to 127.0.0.1 only. articles-pg's PostgreSQL
# cluster (.ci/postgres, durable settings) is started on CPU 0 too: the
# database is part of the server under test. Writes bench/results.md.
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUT="$BENCH/out"
VENV="$BENCH/.venv"
DURATION=${DURATION:-5s}
RUNS=${RUNS:-3}
# articles-pg's runs per workload: as many as the others by default; fewer
# shortens the whole by ~21 s per run dropped (with DURATION=5s).
RUNS_PG=${RUNS_PG:-$RUNS}
WRK_THREADS=${WRK_THREADS:-1}
CONTENDERS=${CONTENDERS:-articles articles-pg axum axum-sqlx fastapi flask json-server ceiling}
# Measured with both on one core (2026-12-07): multi-thread 4 % faster on
# the page, 2 % on GET by id at 256 connections, 20 % on POST; current-thread
# 6 % faster on GET by id at 32 connections.
AXUM_SQLX_RUNTIME=${AXUM_SQLX_RUNTIME:-multi}
IDLE_WAIT=${IDLE_WAIT:-30}
DISTURBED=${DISTURBED:-10}   # % of a core taken by others that voids a run
# The time budget: waiting for quiet CPUs and repeating disturbed runs
# spend only the slack, what the contenders still to come will not need.
# All eight contenders without any repeat or wait come to ~10 minutes with
# the defaults (each workload: a 1 s warm-up + 3 runs of ~5.3 s; ~70 s for
# articles and each axum peer, ~75 s each for FastAPI, Flask and
# json-server with their slower cold starts, ~75 s for articles-pg with its
# cluster's start, seeding and stop, ~50 s for the ceiling's three
# workloads; ~20 s of setup with cached builds). A wait or repeat (at most
# ~30 s) is begun only while the script's time so far, plus that, plus
# PER_CONTENDER for the current contender and each one still to come fits in
# TIME_BUDGET, so the whole stays under ~14.5 minutes (builds on a fresh
# machine eat the slack first: then nothing is repeated).
TIME_BUDGET=${TIME_BUDGET:-870}
DURATION_S=${DURATION%s}
[[ "$DURATION_S" =~ ^[0-9]+$ ]] || DURATION_S=5
PER_CONTENDER=$(( 4 * (RUNS * DURATION_S + 2) + 15 ))   # 83 s with the defaults
LEFT_AFTER=0   # contenders after the current one (set by the main loop)
# may_spend SECONDS: whether a wait or repeat that long still fits.
may_spend() {
  [ $(( SECONDS + $1 + (LEFT_AFTER + 1) * PER_CONTENDER )) -lt "$TIME_BUDGET" ]
}
CEILING_THREADS=4   # the same as articles' default workers on 2 CPUs
SERVER_CPU=0
LOAD_CPU=1

log() { printf '\n== [%d s] %s\n' "$SECONDS" "$*" >&2; }

# ---------------------------------------------------------------- cleanup ---
# Every process this script starts is recorded in STARTED; on exit (normal,
# error or Ctrl-C) each one is stopped together with its descendants
# (gunicorn's workers), by pid. PostgreSQL's cluster (articles-pg) runs
# detached from us (pg_ctl): PG_URL names it while it runs, and cleanup stops
# it and removes its directory (.ci/postgres stop).
STARTED=()
PG_URL=""
descendants() {
  local kid
  for kid in $(pgrep -P "$1" || true); do
    echo "$kid"
    descendants "$kid"
  done
}
kill_tree() {
  local pid=$1 tree
  kill -0 "$pid" 2>/dev/null || return 0
  tree="$pid $(descendants "$pid" | tr '\n' ' ')"
  kill -TERM $tree 2>/dev/null || true
  # up to 12 s: articles drains requests for up to 10 s (--shutdown-timeout)
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL $tree 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${STARTED[@]}"; do kill_tree "$pid"; done
  stop_postgres
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------- setup ----
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  apt-get update
  apt-get install -y wrk
fi

log "Python venv for the peers ($VENV)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$BENCH/requirements.txt"
PY="$VENV/bin/python"

ARTICLES_BIN="$ROOT/target/release/articles"
# The same code with the postgres feature, in a target dir of its own so the
# default release binary (and its size figure) is untouched.
ARTICLES_PG_BIN="$ROOT/target/pg/release/articles"
CEILING_BIN="$BENCH/ceiling/target/release/ceiling"
# The axum peers: Cargo projects of their own, each with its target dir.
AXUM_BIN="$BENCH/peers/axum_rusqlite/target/release/axum-rusqlite-peer"
AXUM_SQLX_BIN="$BENCH/peers/axum_sqlx/target/release/axum-sqlx-peer"
JSON_SERVER="$BENCH/.node/node_modules/.bin/json-server"
wants() { [[ " $CONTENDERS " == *" $1 "* ]]; }
# Build when asked to (the default), or when the binary is missing.
build_needed() { [ "${SKIP_BUILD:-0}" != 1 ] || [ ! -x "$1" ]; }
# The SQLite both axum peers compile (bundled, libsqlite3-sys 0.30.1 as
# articles') gets articles' compile options: .cargo/config.toml's
# LIBSQLITE3_FLAGS reach any cargo build under the repository. The
# rusqlite peer takes them as they are. sqlx's driver calls functions that
# five of them leave out (sqlite3_column_decltype, sqlite3_column_table_name
# and the other column metadata, sqlite3_progress_handler,
# sqlite3_load_extension), so its build gets the rest.
SQLX_SQLITE_FLAGS=$("$PY" - "$ROOT/.cargo/config.toml" <<'PYEOF'
import sys, tomllib
try:
    with open(sys.argv[1], "rb") as f:
        flags = tomllib.load(f).get("env", {}).get("LIBSQLITE3_FLAGS", "")
except FileNotFoundError:
    flags = ""
if isinstance(flags, dict):  # [env] NAME = { value = "..." }
    flags = flags.get("value", "")
needed = {"-USQLITE_ENABLE_COLUMN_METADATA", "-USQLITE_ENABLE_LOAD_EXTENSION",
          "-DSQLITE_OMIT_LOAD_EXTENSION", "-DSQLITE_OMIT_PROGRESS_CALLBACK",
          "-DSQLITE_OMIT_DECLTYPE"}
print(" ".join(f for f in flags.split() if f not in needed))
PYEOF
)
if wants ceiling && build_needed "$CEILING_BIN"; then
  log "building the ceiling server (release)"
  (cd "$BENCH/ceiling" && cargo build --release)
fi
# articles also seeds the axum peers' databases (`articles import`).
if { wants articles || wants axum || wants axum-sqlx; } && build_needed "$ARTICLES_BIN"; then
  log "building articles (release)"
  (cd "$ROOT" && cargo build --release)
fi
if wants articles-pg && build_needed "$ARTICLES_PG_BIN"; then
  log "building articles with the postgres feature (release, target/pg)"
  (cd "$ROOT" && cargo build --release --features postgres --target-dir "$ROOT/target/pg")
fi
if wants axum && build_needed "$AXUM_BIN"; then
  log "building the axum + rusqlite peer (release, fat LTO)"
  (cd "$BENCH/peers/axum_rusqlite" && cargo build --release --locked)
fi
if wants axum-sqlx && build_needed "$AXUM_SQLX_BIN"; then
  log "building the axum + sqlx peer (release, fat LTO)"
  (cd "$BENCH/peers/axum_sqlx" && LIBSQLITE3_FLAGS="$SQLX_SQLITE_FLAGS" cargo build --release --locked)
fi
if wants json-server; then
  if ! command -v npm >/dev/null; then
    log "installing Node.js and npm"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm
  fi
  # json-server 0.17.4 and its dependencies as locked in peers/json_server,
  # into bench/.node; again whenever the lock file changes.
  if [ ! -x "$JSON_SERVER" ] \
     || ! cmp -s "$BENCH/peers/json_server/package-lock.json" "$BENCH/.node/package-lock.json"; then
    log "installing json-server (npm ci into bench/.node)"
    mkdir -p "$BENCH/.node"
    cp "$BENCH/peers/json_server/package.json" "$BENCH/peers/json_server/package-lock.json" "$BENCH/.node/"
    (cd "$BENCH/.node" && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi
if [[ " $CONTENDERS " == *" articles-pg "* ]] && ! "$ROOT/.ci/postgres" bindir >/dev/null 2>&1; then
  log "installing PostgreSQL"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi

rm -rf "$OUT"
mkdir -p "$OUT/db" "$OUT/raw"/{articles,articles-pg,axum,axum-sqlx,fastapi,flask,json-server,ceiling}
# Anything else busy on the 2 cores skews every figure: keep the load
# average at the start in the notes, so a noisy run can be recognised.
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)

free_port() {
  "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# SERVER_CMD=(...) is the pinned command line that serves contender $1 on
# port $2 with database $3. The same line is used for load and cold start.
server_cmd() {
  local name=$1 port=$2 db=$3
  case $name in
    articles)
      # As shipped: default workers, and the access log on at its default
      # level (info), one line per request, written to server.err. The peers
      # below log no requests: that costs articles, not them.
      SERVER_CMD=(env -u RUST_LOG taskset -c $SERVER_CPU "$ARTICLES_BIN" serve
                  --addr "127.0.0.1:$port" --db "$db") ;;
    articles-pg)
      # The same, built with the postgres feature; $db is a postgres:// URL.
      SERVER_CMD=(env -u RUST_LOG taskset -c $SERVER_CPU "$ARTICLES_PG_BIN" serve
                  --addr "127.0.0.1:$port" --db "$db") ;;
    fastapi)
      # One uvicorn worker: one event loop is all one pinned core can use.
      SERVER_CMD=(env PEER_DB="$db" taskset -c $SERVER_CPU "$VENV/bin/uvicorn" fastapi_app:app
                  --app-dir "$BENCH/peers" --host 127.0.0.1 --port "$port" --workers 1
                  --loop uvloop --http httptools --no-access-log --log-level warning) ;;
    flask)
      # Two sync workers on the one core: while one waits (on its socket or
      # SQLite), the other can use the core. Sync workers close the connection
      # after every response (no keep-alive); that is how gunicorn sync works.
      SERVER_CMD=(env PEER_DB="$db" taskset -c $SERVER_CPU "$VENV/bin/gunicorn" flask_app:app
                  --chdir "$BENCH/peers" --bind "127.0.0.1:$port" --workers 2
                  --worker-class sync --no-control-socket --log-level warning) ;;
    axum)
      # axum + rusqlite (peers/axum_rusqlite): tokio's multi-thread runtime
      # (one worker on the one CPU it may use), 4 reading connections and a
      # blocking pool of 4, one writer thread. No request log.
      SERVER_CMD=(taskset -c $SERVER_CPU "$AXUM_BIN" --addr "127.0.0.1:$port" --db "$db") ;;
    axum-sqlx)
      # axum + sqlx (peers/axum_sqlx): a SqlitePool of 4 connections (each
      # with its sqlx worker thread), on the runtime flavour chosen above.
      SERVER_CMD=(taskset -c $SERVER_CPU "$AXUM_SQLX_BIN" --addr "127.0.0.1:$port" --db "$db"
                  --runtime "$AXUM_SQLX_RUNTIME") ;;
    json-server)
      # json-server 0.17 with its defaults (CORS, gzip when asked for: wrk
      # does not ask), --quiet for no request log; $db is its db.json, which
      # it rewrites whole on every write.
      SERVER_CMD=(taskset -c $SERVER_CPU "$JSON_SERVER" --quiet --host 127.0.0.1 --port "$port"
                  "$db") ;;
    ceiling)
      SERVER_CMD=(taskset -c $SERVER_CPU "$CEILING_BIN" "127.0.0.1:$port" $CEILING_THREADS) ;;
  esac
}

# start_server NAME PORT DB: start in the background, wait until the port
# answers HTTP at all, set SERVER_PID.
start_server() {
  local name=$1 port=$2 db=$3
  server_cmd "$name" "$port" "$db"
  "${SERVER_CMD[@]}" >"$OUT/raw/$name/server.out" 2>"$OUT/raw/$name/server.err" &
  SERVER_PID=$!
  STARTED+=("$SERVER_PID")
  for _ in $(seq 300); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/articles/1")" != 000 ]; then
      return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "$name did not start; its stderr:" >&2
  tail -20 "$OUT/raw/$name/server.err" >&2
  exit 1
}

stop_server() { kill_tree "$SERVER_PID"; }

# The first page, newest first, 20 articles: json-server spells it its own
# way (its _page, _limit, _sort, _order parameters).
list_path() {
  case $1 in
    json-server) echo "/articles?_page=1&_limit=20&_sort=id&_order=desc" ;;
    *) echo "/articles?page=1" ;;
  esac
}

# check NAME PORT: one request of each kind, to catch a broken contender
# before its numbers are taken seriously. Recorded in sanity.txt. Then
# shape.py compares the bodies with the seeded data and with articles' (its
# bodies are kept when articles runs first, as it does by default); its
# verdict goes to shape.txt and under the table. A difference is reported,
# not fatal: a broken contender also shows in the table's error rows.
check() {
  local name=$1 port=$2 path code bodies=(--ref "$OUT/raw/articles/bodies")
  for path in /articles/1 "$(list_path "$name")" /articles/999999; do
    code=$(curl -s -o "$OUT/raw/$name/body" -w '%{http_code} %{size_download}' \
           "http://127.0.0.1:$port$path")
    echo "GET $path -> $code bytes" | tee -a "$OUT/raw/$name/sanity.txt" >&2
  done
  [ "$name" != articles ] || bodies=(--save "$OUT/raw/articles/bodies")
  "$PY" "$BENCH/shape.py" "$name" "http://127.0.0.1:$port" "$(list_path "$name")" "${bodies[@]}" \
    | tee -a "$OUT/raw/$name/shape.txt" >&2 || true
}

# check_post NAME PORT: the answer to one more POST /articles (after the
# measured runs, which it cannot disturb), checked by shape.py.
check_post() {
  "$PY" "$BENCH/shape.py" "$1" "http://127.0.0.1:$2" --post \
    | tee -a "$OUT/raw/$1/shape.txt" >&2 || true
}

# wrk_run NAME WORKLOAD CONNS PORT [wrk args...]: a 1 s warm-up, then RUNS
# measured runs, each saved as raw/NAME/WORKLOAD-N.txt for report.py.
# runwrk.py also measures how much CPU other processes took during the run;
# a disturbed run (> DISTURBED %) is repeated after the machine goes quiet,
# at most twice and only while the time budget has slack for it (may_spend),
# so the 15-minute budget holds; the least disturbed attempt is kept.
wrk_run() {
  local name=$1 workload=$2 conns=$3 port=$4 i attempt file verdict score best
  local runs=$RUNS
  [ "$name" != articles-pg ] || runs=$RUNS_PG
  shift 4
  local wrk=(wrk -t"$WRK_THREADS" -c"$conns" --timeout 2s --latency "$@")
  taskset -c $LOAD_CPU "${wrk[@]}" -d1s >/dev/null
  for i in $(seq "$runs"); do
    file="$OUT/raw/$name/$workload-$i.txt"
    best=1000
    for attempt in 1 2 3; do
      verdict=$(taskset -c $LOAD_CPU "$PY" "$BENCH/runwrk.py" "$file.try" "$SERVER_PIDS" \
                $SERVER_CPU $LOAD_CPU -- "${wrk[@]}" -d"$DURATION")
      echo "  $name $workload #$i: $(grep -h 'Requests/sec' "$file.try")," \
           "others took ${verdict/ /% \/ }% of server/wrk CPU" >&2
      # Keep the least disturbed attempt.
      score=$(awk '{ print ($1 > $2 ? $1 : $2) }' <<<"$verdict")
      if awk -v a="$score" -v b="$best" 'BEGIN { exit !(a < b) }'; then
        mv "$file.try" "$file"
        best=$score
      fi
      if awk -v a="$best" -v max="$DISTURBED" 'BEGIN { exit !(a > max) }' \
         && [ "$attempt" -lt 3 ] && may_spend 30; then
        echo "  disturbed: waiting for quiet CPUs, then repeating" >&2
        "$PY" "$BENCH/monitor.py" --wait-idle 20
        continue
      fi
      break
    done
    rm -f "$file.try"
  done
}

# measure NAME PORT [POST]: every workload against the running server, with
# monitor.py (on the load CPU) sampling the RSS of the server's process tree.
# While PostgreSQL runs (articles-pg), its postmaster's tree counts as part of
# the server for the disturbance check, and a second memory figure adds its
# Pss (see monitor.py).
measure() {
  local name=$1 port=$2 with_post=${3:-}
  local url="http://127.0.0.1:$port"
  local with_pg=() pg
  SERVER_PIDS=$SERVER_PID
  "$PY" "$BENCH/monitor.py" "$SERVER_PID" --once >"$OUT/raw/$name/rss_idle_kib"
  if [ -n "$PG_URL" ]; then
    pg=$(postmaster_pid)
    SERVER_PIDS="$SERVER_PID,$pg"
    "$PY" "$BENCH/monitor.py" "$SERVER_PID" --once --plus-pss "$pg" \
      >"$OUT/raw/$name/rss_idle_with_pg_kib"
    with_pg=(--plus-pss "$pg" "$OUT/raw/$name/rss_peak_with_pg_kib")
  fi
  taskset -c $LOAD_CPU "$PY" "$BENCH/monitor.py" "$SERVER_PID" "$OUT/raw/$name/rss_peak_kib" \
    "${with_pg[@]}" &
  local sampler=$!
  STARTED+=("$sampler")
  log "$name: load"
  wrk_run "$name" get_id_32 32 "$port" -s "$BENCH/lua/get_random_id.lua" "$url"
  wrk_run "$name" list_32 32 "$port" "$url$(list_path "$name")"
  wrk_run "$name" get_id_256 256 "$port" -s "$BENCH/lua/get_random_id.lua" "$url"
  # POST last, so the reads above all saw the same 1,000 articles.
  if [ -n "$with_post" ]; then
    wrk_run "$name" post_32 32 "$port" -s "$BENCH/lua/post_article.lua" "$url/articles"
  fi
  kill -TERM "$sampler"
  wait "$sampler" || true
}

# coldstart NAME DB: exec → first 200 on GET /articles/1, median of 5.
coldstart() {
  local name=$1 db=$2 port
  port=$(free_port)
  server_cmd "$name" "$port" "$db"
  log "$name: cold start"
  taskset -c $LOAD_CPU "$PY" "$BENCH/coldstart.py" "$port" /articles/1 5 -- "${SERVER_CMD[@]}" \
    >"$OUT/raw/$name/coldstart.json" &
  local helper=$!
  STARTED+=("$helper")
  wait "$helper"
  cat "$OUT/raw/$name/coldstart.json" >&2
}

# start_postgres: a throwaway cluster on 127.0.0.1 (.ci/postgres), with
# PostgreSQL's durable defaults (fsync, synchronous_commit, full_page_writes
# on: ARTICLES_PG_DURABLE=1), started pinned to the server's CPU so the
# postmaster and every backend it forks run there too. Its data directory
# goes under $OUT/db, on the same filesystem as the SQLite contenders' files.
# Sets PG_URL (admin URL) and PG_DB_URL (a fresh database `articles`).
start_postgres() {
  local bindir
  bindir=$("$ROOT/.ci/postgres" bindir)
  PG_URL=$(ARTICLES_PG_DURABLE=1 TMPDIR="$OUT/db" taskset -c $SERVER_CPU \
           "$ROOT/.ci/postgres" start "$(free_port)")
  "$bindir/psql" -X -q -v ON_ERROR_STOP=1 "$PG_URL" -c 'CREATE DATABASE articles' >&2
  PG_DB_URL="${PG_URL%/*}/articles"
  PG_PORT=${PG_URL##*:}
  PG_PORT=${PG_PORT%%/*}
  PG_VERSION=$("$bindir/psql" -X -A -t "$PG_URL" -c 'SHOW server_version' | cut -d' ' -f1)
  "$bindir/psql" -X -A -t "$PG_URL" \
    -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name) FROM pg_settings
        WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes',
                       'shared_buffers', 'wal_sync_method')" >"$OUT/raw/articles-pg/pg_settings"
  echo "PostgreSQL $PG_VERSION at $PG_URL (pid $(postmaster_pid)," \
       "CPUs $(taskset -cp "$(postmaster_pid)" | sed 's/.*: //')): $(cat "$OUT/raw/articles-pg/pg_settings")" >&2
}

# The postmaster's pid: the first line of postmaster.pid in its data dir.
postmaster_pid() {
  head -n 1 "$OUT/db/articles-pg-$PG_PORT/data/postmaster.pid" 2>/dev/null || true
}

stop_postgres() {
  if [ -n "$PG_URL" ]; then
    TMPDIR="$OUT/db" "$ROOT/.ci/postgres" stop "$PG_URL" || true
    PG_URL=""
  fi
}

stripped_size() {
  strip -o "$OUT/stripped" "$1"
  stat -c %s "$OUT/stripped"
  rm -f "$OUT/stripped"
}

# ------------------------------------------------------------- contenders ---
# articles: seeded through its own HTTP API, as a client would.
AUTHOR_NOTE="not measured"
bench_articles() {
  log "articles"
  local db="$OUT/db/articles.db" token="" port
  AUTHOR_NOTE="anonymous (no \`articles user add\`)"
  # The token is the last line of stdout; stderr goes elsewhere so log lines
  # cannot be mistaken for it.
  if "$ARTICLES_BIN" user add bench --db "$db" >"$OUT/raw/articles/user_add.out" \
       2>"$OUT/raw/articles/user_add.err"; then
    token=$(tail -n 1 "$OUT/raw/articles/user_add.out" | tr -d '[:space:]')
  fi
  if [ -n "$token" ]; then
    AUTHOR_NOTE="user \`bench\`, bearer token on every POST"
  fi
  port=$(free_port)
  start_server articles "$port" "$db"
  "$PY" "$BENCH/seed.py" http "http://127.0.0.1:$port" "$token"
  check articles "$port"
  stop_server                    # SIGTERM: WAL checkpointed, clean file
  coldstart articles "$db"
  port=$(free_port)
  start_server articles "$port" "$db"
  BENCH_TOKEN="$token" measure articles "$port" post
  BENCH_TOKEN="$token" check_post articles "$port"
  stop_server
  stripped_size "$ARTICLES_BIN" >"$OUT/raw/articles/binary_bytes"
}

# articles-pg: the same, on a PostgreSQL cluster of its own, which is part of
# the server under test (same CPU). Seeded, checked, cold-started and
# measured exactly as articles is.
AUTHOR_NOTE_PG="not measured"
bench_articles_pg() {
  log "articles-pg"
  local token="" port
  start_postgres
  AUTHOR_NOTE_PG="anonymous (no \`articles user add\`)"
  if "$ARTICLES_PG_BIN" user add bench --db "$PG_DB_URL" >"$OUT/raw/articles-pg/user_add.out" \
       2>"$OUT/raw/articles-pg/user_add.err"; then
    token=$(tail -n 1 "$OUT/raw/articles-pg/user_add.out" | tr -d '[:space:]')
  fi
  if [ -n "$token" ]; then
    AUTHOR_NOTE_PG="user \`bench\`, bearer token on every POST"
  fi
  port=$(free_port)
  start_server articles-pg "$port" "$PG_DB_URL"
  "$PY" "$BENCH/seed.py" http "http://127.0.0.1:$port" "$token"
  check articles-pg "$port"
  stop_server
  coldstart articles-pg "$PG_DB_URL"
  port=$(free_port)
  start_server articles-pg "$port" "$PG_DB_URL"
  BENCH_TOKEN="$token" measure articles-pg "$port" post
  BENCH_TOKEN="$token" check_post articles-pg "$port"
  stop_server
  stop_postgres
  stripped_size "$ARTICLES_PG_BIN" >"$OUT/raw/articles-pg/binary_bytes"
}

# The Python peers: their own SQLite files, seeded directly.
bench_peer() {
  local name=$1 db="$OUT/db/$1.db"
  log "$name"
  "$PY" "$BENCH/seed.py" sqlite "$db"
  measure_peer "$name" "$db"
}

# A seeded peer: cold start, the shape checks and the load.
measure_peer() {
  local name=$1 db=$2 port
  coldstart "$name" "$db"
  port=$(free_port)
  start_server "$name" "$port" "$db"
  check "$name" "$port"
  measure "$name" "$port" post
  check_post "$name" "$port"
  stop_server
}

# The seeded articles as a db.json (seed.py dbjson): json-server serves a
# copy, and `articles import` makes the axum peers' databases from it.
SEED_JSON="$OUT/db/seed.json"
seed_json() {
  [ -f "$SEED_JSON" ] || "$PY" "$BENCH/seed.py" dbjson "$SEED_JSON"
}

# The axum peers: a database made by `articles import` of the seed (so
# articles' own schema.sql, migrations, indexes, FTS5 index and count
# table, with the same 1,000 articles, ids, author and times as the Python
# peers'), then cold start, checks and load as for the Python peers.
bench_axum() {
  local name=$1 bin=$2 db="$OUT/db/$1.db"
  log "$name"
  seed_json
  "$ARTICLES_BIN" import "$SEED_JSON" --db "$db" >"$OUT/raw/$name/import.out" \
    2>"$OUT/raw/$name/import.err"
  measure_peer "$name" "$db"
  stripped_size "$bin" >"$OUT/raw/$name/binary_bytes"
}

# json-server: its own copy of the seed's db.json (it rewrites the file on
# every write).
bench_json_server() {
  local db="$OUT/db/json-server.json" port
  log "json-server"
  seed_json
  cp "$SEED_JSON" "$db"
  coldstart json-server "$db"
  port=$(free_port)
  start_server json-server "$port" "$db"
  check json-server "$port"
  measure json-server "$port" post
  check_post json-server "$port"
  stop_server
}

# The ceiling: GET workloads only (it has no database to write to).
bench_ceiling() {
  local port
  log "ceiling"
  coldstart ceiling -
  port=$(free_port)
  start_server ceiling "$port" -
  measure ceiling "$port"
  stop_server
  stripped_size "$CEILING_BIN" >"$OUT/raw/ceiling/binary_bytes"
}

LEFT_AFTER=$(wc -w <<<"$CONTENDERS")
for contender in $CONTENDERS; do
  LEFT_AFTER=$(( LEFT_AFTER - 1 ))
  # Let other work on the 2 cores (a build, a test run) finish first, up to
  # IDLE_WAIT seconds; the disturbance row in the table tells what remained.
  if may_spend "$IDLE_WAIT"; then
    "$PY" "$BENCH/monitor.py" --wait-idle "$IDLE_WAIT"
  fi
  case $contender in
    articles) bench_articles ;;
    articles-pg) bench_articles_pg ;;
    axum) bench_axum axum "$AXUM_BIN" ;;
    axum-sqlx) bench_axum axum-sqlx "$AXUM_SQLX_BIN" ;;
    fastapi|flask) bench_peer "$contender" ;;
    json-server) bench_json_server ;;
    ceiling) bench_ceiling ;;
    *) echo "unknown contender: $contender" >&2; exit 2 ;;
  esac
done

# ----------------------------------------------------------------- report ---
# A crate's version in a peer's Cargo.lock.
crate_version() {
  awk -v n="$2" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
    "$BENCH/peers/$1/Cargo.lock"
}
AXUM_STACK="axum $(crate_version axum_rusqlite axum), tokio $(crate_version axum_rusqlite tokio), rusqlite $(crate_version axum_rusqlite rusqlite)"
SQLX_STACK="axum $(crate_version axum_sqlx axum), tokio $(crate_version axum_sqlx tokio), sqlx $(crate_version axum_sqlx sqlx)"
JSON_SERVER_VERSION=$(cat "$BENCH/.node/node_modules/json-server/package.json" 2>/dev/null \
  | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["version"])' 2>/dev/null || echo "?")
NODE_VERSION=$(node --version 2>/dev/null || echo "?")
cat >"$OUT/notes.md" <<EOF
Ratios are the first-named column ÷ the second (articles/FastAPI is articles
÷ FastAPI, articles-pg/articles is PostgreSQL ÷ SQLite): above 1 is better
for requests/s, below 1 is better for latency, memory, cold start and size.

How this was measured (bench/run.sh, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores,
$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')):
- Every server under test pinned to CPU $SERVER_CPU (\`taskset -c $SERVER_CPU\`), wrk and the
  RSS sampler to CPU $LOAD_CPU. wrk: $WRK_THREADS thread, keep-alive connections,
  ${DURATION} per run, $RUNS runs per workload ($RUNS_PG for articles-pg) after a 1 s
  warm-up; figures are medians of the runs, errors (non-2xx + socket errors,
  wrk timeout 2 s) are summed over them.
- articles: \`articles serve\` with its defaults (4 workers on 2 CPUs), the access
  log on at the default level (info) into a file, metrics on; seeded with 1,000
  POST /articles over HTTP; author: $AUTHOR_NOTE.
- articles-pg: the same code built with \`--features postgres\`, the same
  defaults (one pool of 4 + 1 connections), \`--db postgres://…\` on a throwaway
  PostgreSQL ${PG_VERSION:-?} cluster on 127.0.0.1 (\`.ci/postgres\` with
  \`ARTICLES_PG_DURABLE=1\`: $(cat "$OUT/raw/articles-pg/pg_settings" 2>/dev/null || echo "not run")),
  its data on the same disk as the SQLite files, created fresh by the run and
  removed after it. The cluster is started under \`taskset -c $SERVER_CPU\`, so the postmaster and
  all its backends share CPU $SERVER_CPU with articles: the database is part of the
  server under test (its CPU counts as the server's in the disturbance row).
  Seeded like articles (1,000 POST /articles over HTTP); author: $AUTHOR_NOTE_PG.
  Durability differs: with synchronous_commit on, PostgreSQL flushes each
  commit's WAL to disk before articles answers (survives power loss), while
  articles on SQLite runs \`synchronous = NORMAL\` (no flush per commit; survives a
  crash of the process): POST /articles costs articles-pg more for that.
- axum: $AXUM_STACK (bench/peers/axum_rusqlite),
  fat LTO, codegen-units 1, panic = abort; tokio's multi-thread runtime (one
  worker: it may use one CPU). Reads on spawn_blocking over 4 rusqlite
  connections with cached statements, the blocking pool capped at 4; writes
  sent over a channel to one writer thread, which commits all the writes
  queued when it wakes in one transaction (a savepoint each, the new
  articles put in the FTS5 index by one statement, as articles does).
  articles' schema.sql (its migrations, by \`PRAGMA user_version\`): a POST
  writes the article row (tags joined in it), its article_tags rows, the
  count table's row (trigger) and the FTS5 index, as articles does; not the
  change-feed event articles records with every change, nor a token lookup
  (POSTs go to the seeded user, read per write). No request log. Bundled
  SQLite with articles' compile options (.cargo/config.toml).
- axum-sqlx: $SQLX_STACK (bench/peers/axum_sqlx),
  fat LTO, codegen-units 1; tokio's $AXUM_SQLX_RUNTIME-thread runtime (multi-thread
  measured the faster of the two on one core; AXUM_SQLX_RUNTIME). One SqlitePool of 4 connections (each driven by a thread
  of sqlx's), State and Json extractors, query_as into FromRow structs,
  sqlx's statement cache; each POST one \`pool.begin()\` transaction
  (article row, its tags, its FTS5 row; the count trigger). The same
  schema.sql, WAL, synchronous = NORMAL. SQLite compiled with articles'
  options except five sqlx needs (column metadata, decltype, progress
  handler, load_extension).
- The axum peers' databases are made by \`articles import\` of the seed's
  db.json: articles' schema, indexes and FTS5 index, and the same 1,000
  articles, ids, author (\`bench\`) and times as the Python peers'. No
  authentication; POSTs are attributed to the seeded user, like the Python
  peers'.
- json-server: json-server $JSON_SERVER_VERSION on Node.js $NODE_VERSION, its defaults (CORS on,
  gzip only when asked for, which wrk does not) with \`--quiet\` (no request
  log), serving a db.json of the same 1,000 articles in the API's shape. Its
  own URLs: GET /articles/{id} as the others; the page is
  \`/articles?_page=1&_limit=20&_sort=id&_order=desc\` (X-Total-Count too);
  POST /articles stores the body as sent (no validation; tags not
  deduplicated or sorted; no author or times) and answers it with its new
  id, and rewrites the whole db.json (~850 KB, growing) synchronously on every
  write. Bodies are pretty-printed JSON (785 bytes for /articles/1, where
  the others send 723).
- FastAPI: async SQLAlchemy + aiosqlite, Pydantic response models, uvicorn with
  uvloop and httptools, 1 worker, no access log.
- Flask: Flask-SQLAlchemy, gunicorn with 2 sync workers (both on CPU $SERVER_CPU; sync
  workers close every connection, so wrk reconnects per request).
- The Python peers' SQLite files (WAL mode, index on created_at) are seeded
  directly with the same 1,000 articles (~500 chars, 2-4 tags, one author).
  They do no authentication; POSTs are attributed to the seeded user.
- ceiling: bare tiny_http_fork, $CEILING_THREADS threads calling recv(), a fixed 344-byte
  JSON body for every request (GET workloads only): the HTTP layer's limit.
- Peak RSS: VmRSS summed over the server's process tree (gunicorn/uvicorn
  workers included), sampled every 100 ms across all of its workloads. For
  articles-pg the main rows count the articles process only; the "+
  PostgreSQL's processes' Pss" rows add, once a second (reading Pss costs
  more), the Pss (proportional set size) summed over the postmaster and all
  its processes:
  Pss counts a page of the shared buffers once in all, where summed VmRSS
  would count it once per backend that touched it. Their ratios divide by
  the other columns' ordinary figures.
- Cold start: exec → first 200 on GET /articles/1 with the seeded database,
  polled every 1 ms, median of 5. For articles-pg this includes connecting
  to the already running PostgreSQL (opening the pool, checking migrations),
  not starting PostgreSQL.
- Binary size: \`strip\` of the release binary; for articles-pg, of the binary
  built with \`--features postgres\` (what the feature costs).
- Disturbance: for every run, the share of CPU $SERVER_CPU used by anything but
  the server's process tree (articles-pg: and PostgreSQL's), and of CPU $LOAD_CPU by anything but wrk (busy
  ticks minus ours). A run above $DISTURBED % was repeated (at most
  twice, within the time budget) after waiting for quiet CPUs, keeping the
  least disturbed attempt; the row shows the worst kept run.
  Load average when measuring began: $LOADAVG_START. The whole run took
  $((SECONDS / 60)) min $((SECONDS % 60)) s, setup and builds included.

Sanity checks (status, bytes) per contender:
$(for n in articles articles-pg axum axum-sqlx fastapi flask json-server; do
    if [ -f "$OUT/raw/$n/sanity.txt" ]; then sed "s/^/- $n: /" "$OUT/raw/$n/sanity.txt"; fi
  done)

Bodies (bench/shape.py: GET /articles/{id} for ids 1, 2, 500 and 1000 and
the first page, against the seeded data and articles' own bodies; then the
answer to one POST after the load):
$(for n in articles articles-pg axum axum-sqlx fastapi flask json-server; do
    if [ -f "$OUT/raw/$n/shape.txt" ]; then sed "s/^$n: /- $n: /" "$OUT/raw/$n/shape.txt"; fi
  done)
EOF
"$PY" "$BENCH/report.py" "$OUT" "$BENCH/results.md"
