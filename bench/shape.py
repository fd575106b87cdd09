"""Does a contender answer the same bodies as `articles`? (bench/run.sh)

    shape.py NAME BASE_URL LIST_PATH [--save DIR] [--ref DIR]
    shape.py NAME BASE_URL --post [--ref DIR]

Reads: GET /articles/{id} for a few seeded ids and the first page
(LIST_PATH, e.g. /articles?page=1), each checked against the seeded data
(seed.py): the article's fields, in the API's shape (API.md): id, title,
content, tags (sorted), author {id, username} of the seeded user `bench`,
created_at and updated_at as RFC 3339 with milliseconds and `Z`; the page
the 20 newest (ids 1000 down to 981) with X-Total-Count: 1000. Exits 1 on a
difference there. --save DIR keeps the bodies (articles' run); --ref DIR
compares with bodies saved so: byte for byte once the timestamps are masked
(articles was seeded through its API, so its times are the seeding's).

--post: one POST /articles (after the measured runs; with $BENCH_TOKEN as
a bearer token when set, as the wrk script sends it), its answer checked
the same way: 201, Location, the article with its tags deduplicated and
sorted, author and times. Differences are reported, never fatal (json-server
stores what it is sent).

Prints one line per finding; the last line is the verdict.
"""
import http.client
import json
import os
import re
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import seed  # noqa: E402

KEYS = ["id", "title", "content", "tags", "author", "created_at", "updated_at"]
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TIME_IN_BODY = re.compile(r'("(?:created|updated)_at":\s*")[^"]*(")')
AUTHOR = {"id": 1, "username": "bench"}
IDS = [1, 2, 500, 1000]


def request(base, method, path, body=None):
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if body is not None and os.environ.get("BENCH_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['BENCH_TOKEN']}"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw


def check_article(where, got, expected, problems, notes):
    """Compares one article object with what was seeded (or sent)."""
    if not isinstance(got, dict):
        problems.append(f"{where}: not a JSON object")
        return
    if set(got) != set(KEYS):
        missing = [k for k in KEYS if k not in got]
        extra = [k for k in got if k not in KEYS]
        problems.append(f"{where}: keys differ (missing {missing}, extra {extra})")
    elif list(got) != KEYS:
        notes.add(f"keys in another order ({', '.join(got)})")
    for key in ("id", "title", "content"):
        if key in expected and got.get(key) != expected[key]:
            problems.append(f"{where}: {key} {str(got.get(key))[:60]!r} != {str(expected[key])[:60]!r}")
    if "tags" in got:
        want = sorted(set(expected["tags"]))
        if got["tags"] != want:
            problems.append(f"{where}: tags {got['tags']} != {want} (deduplicated, sorted)")
    if "author" in got and got["author"] != AUTHOR:
        problems.append(f"{where}: author {got['author']!r} != {AUTHOR!r}")
    for key in ("created_at", "updated_at"):
        if key in got and not (isinstance(got[key], str) and TIME.match(got[key])):
            problems.append(f"{where}: {key} {got[key]!r} is not RFC 3339 with ms and Z")
        elif key in got and key in expected and got[key] != expected[key]:
            notes.add("times are not the seed's (seeded through the API: the times of its POSTs)")


def layout(where, raw, parsed, notes):
    """Notes, once per contender, a body that is not compact JSON."""
    compact = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode()
    if raw.rstrip(b"\n") != compact:
        if not any(n.startswith("bodies not compact") for n in notes):
            notes.add(f"bodies not compact JSON (e.g. {where}: {len(raw)} bytes where compact "
                      f"is {len(compact)})")
    elif raw != compact:
        notes.add("bodies end in a newline")


def masked(raw):
    return TIME_IN_BODY.sub(r"\1…\2", raw.decode())


def reads(name, base, list_path, save, ref):
    seeded = {i: a for i, a in enumerate(seed.articles(), 1)}

    def expected(i):
        t = seed.seeded_time(i)
        return {"id": i, **seeded[i], "created_at": t, "updated_at": t}

    problems, notes, same_bytes = [], set(), []
    bodies = {}
    for i in IDS:
        status, _, raw = request(base, "GET", f"/articles/{i}")
        if status != 200:
            problems.append(f"GET /articles/{i}: status {status}")
            continue
        got = json.loads(raw)
        check_article(f"GET /articles/{i}", got, expected(i), problems, notes)
        layout(f"/articles/{i}", raw, got, notes)
        bodies[f"get_{i}"] = raw
    status, headers, raw = request(base, "GET", list_path)
    if status != 200:
        problems.append(f"GET {list_path}: status {status}")
    else:
        page = json.loads(raw)
        bodies["page"] = raw
        layout(list_path, raw, page, notes)
        ids = [a.get("id") for a in page] if isinstance(page, list) else None
        if ids != list(range(1000, 980, -1)):
            problems.append(f"GET {list_path}: ids {ids} != 1000 down to 981")
        else:
            for a in page:
                check_article(f"GET {list_path} id {a['id']}", a, expected(a["id"]),
                              problems, notes)
        if headers.get("x-total-count") != "1000":
            problems.append(f"GET {list_path}: X-Total-Count {headers.get('x-total-count')!r} != '1000'")
    if save:
        Path(save).mkdir(parents=True, exist_ok=True)
        for key, raw in bodies.items():
            (Path(save) / f"{key}.json").write_bytes(raw)
    if ref and (Path(ref) / "page.json").exists():
        for key, raw in bodies.items():
            theirs = Path(ref) / f"{key}.json"
            if theirs.exists():
                same_bytes.append(masked(raw) == masked(theirs.read_bytes()))
        notes.add("byte for byte the same bodies as articles' (times masked)" if all(same_bytes)
                  else f"bodies differ from articles' in bytes ({same_bytes.count(False)} of "
                       f"{len(same_bytes)}; times masked)")
    for p in problems:
        print(f"{name}: MISMATCH {p}")
    for n in sorted(notes):
        print(f"{name}: note: {n}")
    verdict = "DIFFERENT" if problems else "same"
    print(f"{name}: GET /articles/{{id}} ({', '.join(map(str, IDS))}) and {list_path}: "
          f"{verdict} fields and shape as the API{' (see above)' if problems or notes else ''}")
    return 1 if problems else 0


def post(name, base):
    sent = {"title": "Shape check", "content": "Checked by bench/shape.py.",
            "tags": ["web", "api", "web"]}
    status, headers, raw = request(base, "POST", "/articles", json.dumps(sent))
    problems, notes = [], set()
    if status != 201:
        problems.append(f"POST /articles: status {status} (articles: 201)")
    got = json.loads(raw) if raw else None
    if isinstance(got, dict):
        check_article("POST /articles", got, sent, problems, notes)
        location = headers.get("location", "")
        if not location.endswith(f"/articles/{got.get('id')}"):
            problems.append(f"POST /articles: Location {location!r}")
        elif location.startswith("http"):
            notes.add(f"Location is an absolute URL ({location})")
    else:
        problems.append("POST /articles: no JSON object in the answer")
    for p in problems:
        print(f"{name}: POST differs: {p}")
    for n in sorted(notes):
        print(f"{name}: POST note: {n}")
    print(f"{name}: POST /articles answer: "
          f"{'DIFFERENT fields or shape from' if problems else 'same fields and shape as'} "
          f"articles'")
    return 0


def main():
    args = sys.argv[1:]
    opts = {}
    for flag in ("--save", "--ref"):
        if flag in args:
            i = args.index(flag)
            opts[flag] = args[i + 1]
            del args[i:i + 2]
    if "--post" in args:
        args.remove("--post")
        sys.exit(post(args[0], args[1]))
    if len(args) != 3:
        sys.exit(__doc__)
    sys.exit(reads(args[0], args[1], args[2], opts.get("--save"), opts.get("--ref")))


if __name__ == "__main__":
    main()
