"""Export and import speed and memory, on SQLite: 100,000 articles.

    python3 bench/data.py BINARY [--articles 100000]

Writes a JSON Lines file of ARTICLES articles (about 500 characters of
content each, three tags, one of 10 authors), then times, each in a fresh
process: `import` of it into a new database, and `export` of that database
to a file. Prints articles per second and the peak RSS of each process.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def measure(args):
    """Runs args in a child; returns (seconds, peak RSS in MiB)."""
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
            "e = time.perf_counter() - t; "
            "sys.exit(r.stderr.decode()) if r.returncode else "
            "print(e, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{args}: {out.stderr}")
    seconds, kib = out.stdout.split()
    return float(seconds), int(kib) / 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--articles", type=int, default=100_000)
    opts = parser.parse_args()
    n = opts.articles
    content = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 9).strip()
    with tempfile.TemporaryDirectory() as d:
        source = os.path.join(d, "in.jsonl")
        with open(source, "w") as f:
            for i in range(1, n + 1):
                article = {"id": i, "title": f"Article {i}", "content": content,
                           "tags": ["bench", f"t{i % 7}", f"u{i % 13}"],
                           "author": {"username": f"author{i % 10}"},
                           "created_at": "2026-12-01T00:00:00.000Z",
                           "updated_at": "2026-12-01T00:00:00.000Z"}
                f.write(json.dumps({"article": article}) + "\n")
        db = os.path.join(d, "db")
        size = os.path.getsize(source) / 2**20
        imp_s, imp_rss = measure([opts.binary, "import", source, "--db", db])
        out = os.path.join(d, "out.jsonl")
        exp_s, exp_rss = measure([opts.binary, "export", "--db", db, "--output", out])
        lines = sum(1 for _ in open(out))
        assert lines == n + 10, lines  # the articles and their 10 authors
    print(f"{n} articles, {size:.0f} MiB of JSON Lines")
    print("| command | seconds | articles/s | peak RSS (MiB) |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| import | {imp_s:.2f} | {n / imp_s:,.0f} | {imp_rss:.1f} |")
    print(f"| export | {exp_s:.2f} | {n / exp_s:,.0f} | {exp_rss:.1f} |")


if __name__ == "__main__":
    main()
