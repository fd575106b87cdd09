#!/usr/bin/env bash
# Instructions per request, counted by callgrind (repeatable, unlike time):
# a server on a fresh database answers N keep-alive GET /articles/1 (or N
# POST /articles, or N GET /articles?page=1 of 25 articles) from one client; prints the server's total instructions
# and the per-request figure, net of start-up and shutdown (measured with
# no requests and subtracted).
#
#   bench/callgrind.sh BINARY [get|post|page] [N]
set -euo pipefail
binary=$1 workload=${2:-get} count=${3:-5000}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
dir=${CALLGRIND_DIR:-$(mktemp -d)}
[ -n "${CALLGRIND_DIR:-}" ] || trap 'rm -rf "$dir"' EXIT

run() { # $1: requests to send; prints the server's instruction total
    local n=$1 port out pid
    rm -f "$dir"/db* "$dir"/cg.out
    GLIBC_TUNABLES=glibc.malloc.tcache_count=1 valgrind --tool=callgrind \
        --callgrind-out-file="$dir/cg.out" "$binary" serve --addr 127.0.0.1:0 \
        --db "$dir/db" --workers 2 >"$dir/stdout" 2>"$dir/stderr" &
    pid=$!
    for _ in $(seq 200); do
        grep -q listening "$dir/stdout" 2>/dev/null && break
        sleep 0.05
    done
    port=$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$dir/stdout")
    python3 - "$port" "$n" "$workload" <<'PY'
import socket, sys
port, n, workload = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
def ask(req):
    s.sendall(req)
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(65536)
    top, _, body = head.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in top.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += s.recv(65536)
body = b'{"title":"t","content":"c","tags":["a"]}'
post = b"POST /articles HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
for _ in range(25 if workload == "page" else 1):
    ask(post)
get = b"GET /articles/1 HTTP/1.1\r\nHost: x\r\n\r\n"
page = b"GET /articles?page=1 HTTP/1.1\r\nHost: x\r\n\r\n"
for _ in range(n):
    ask({"get": get, "page": page}.get(workload, post))
PY
    kill -TERM "$pid"
    wait "$pid" || true
    sed -n 's/^summary: //p' "$dir/cg.out"
}
base=$(run 0)
total=$(run "$count")
echo "$workload x $count: $total instructions; start-up and shutdown $base;" \
     "per request $(( (total - base) / count ))"
