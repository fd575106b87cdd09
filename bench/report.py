"""Turn the raw outputs of bench/run.sh into the Markdown results table.

    report.py OUTDIR RESULTS_MD

OUTDIR/raw/<server>/ holds, per contender:
  <workload>-<run>.txt   wrk --latency output of each measured run, then a
                         line "disturbance: S L" from runwrk.py
  rss_peak_kib           peak RSS of the process tree under load
  rss_idle_kib           RSS of the process tree after seeding, before load
  rss_*_with_pg_kib      the same with PostgreSQL's processes added (articles-pg)
  coldstart.json         {"median_ms": ..., "samples_ms": [...]}
  binary_bytes           size of the stripped binary (Rust contenders)
OUTDIR/notes.md is copied under the table. Every figure of a workload is the
median over its runs, except errors, which are summed over all runs.
"""
import json
import re
import statistics
import sys
from pathlib import Path

SERVERS = [("articles", "articles"), ("articles-pg", "articles-pg"), ("axum", "axum"),
           ("axum-sqlx", "axum-sqlx"), ("fastapi", "FastAPI"), ("flask", "Flask"),
           ("json-server", "json-server"), ("ceiling", "ceiling")]
# Ratio columns, numerator ÷ denominator. articles-pg is not set against the
# ceiling: articles/ceiling already says what the HTTP layer leaves.
RATIOS = [("articles", "axum"), ("articles", "axum-sqlx"), ("articles", "fastapi"),
          ("articles", "flask"), ("articles", "json-server"), ("articles", "ceiling"),
          ("articles-pg", "articles"), ("articles-pg", "fastapi"), ("articles-pg", "flask")]
LABEL = dict(SERVERS)
WORKLOADS = [("get_id_32", "GET /articles/{id}, 32 conns"),
             ("list_32", "GET /articles?page=1, 32 conns"),
             ("post_32", "POST /articles, 32 conns"),
             ("get_id_256", "GET /articles/{id}, 256 conns")]
UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def parse_wrk(text):
    """Requests/s, p50 and p99 in ms, and error count of one wrk run."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {p: float(v) * UNIT_MS[u] for p, v, u in
           re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)",
                                            text.split("Socket errors:", 1)[1].splitlines()[0])) \
        if "Socket errors:" in text else 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors += int(m.group(1)) if m else 0
    d = re.search(r"^disturbance: ([\d.]+) ([\d.]+)$", text, re.M)
    return {"rps": rps, "p50": lat.get("50"), "p99": lat.get("99"), "errors": errors,
            "disturbance": (float(d.group(1)), float(d.group(2))) if d else (0.0, 0.0)}


def load(outdir):
    data = {}
    for server, _ in SERVERS:
        d = outdir / "raw" / server
        figs = {}
        for wl, _ in WORKLOADS:
            runs = [parse_wrk(p.read_text()) for p in sorted(d.glob(f"{wl}-*.txt"))]
            if runs:
                figs[wl] = {
                    "rps": statistics.median(r["rps"] for r in runs),
                    "p50": statistics.median(r["p50"] for r in runs),
                    "p99": statistics.median(r["p99"] for r in runs),
                    "errors": sum(r["errors"] for r in runs),
                    "runs": len(runs),
                }
                worst = figs.get("disturbance", (0.0, 0.0))
                figs["disturbance"] = tuple(max(w, max(r["disturbance"][k] for r in runs))
                                            for k, w in enumerate(worst))
        for name in ("rss_peak_kib", "rss_idle_kib", "rss_peak_with_pg_kib",
                     "rss_idle_with_pg_kib", "binary_bytes"):
            if (d / name).exists():
                figs[name] = float((d / name).read_text().split()[0])
        if (d / "coldstart.json").exists():
            figs["coldstart"] = json.loads((d / "coldstart.json").read_text())["median_ms"]
        data[server] = figs
    return data


def fmt(value, kind):
    if value is None:
        return "—"
    if kind == "rps":
        return f"{value:,.0f}"
    if kind == "errors":
        return f"{value:,.0f}"
    if kind == "ms":
        return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"
    if kind == "mib":
        return f"{value:.1f}"
    return str(value)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.3g}×" if r < 1000 else f"{r:.0f}×"


def table(data):
    head = ["workload", "figure"] + [label for _, label in SERVERS] + \
        [f"{LABEL[a]}/{LABEL[b]}" for a, b in RATIOS]
    rows = [head, ["---"] * len(head)]

    def row(workload, figure, values, kind, ratios=True, denominators=None):
        """denominators: the figures to divide by, when not this row's own."""
        cells = [fmt(values.get(s), kind) for s, _ in SERVERS]
        den = values if denominators is None else denominators
        rats = [ratio(values.get(a), den.get(b)) if ratios else "—" for a, b in RATIOS]
        rows.append([workload, figure] + cells + rats)

    for wl, label in WORKLOADS:
        for fig, name, kind in (("rps", "requests/s", "rps"), ("p50", "p50 latency (ms)", "ms"),
                                ("p99", "p99 latency (ms)", "ms"),
                                ("errors", "errors (sum of runs)", "errors")):
            values = {s: data[s][wl][fig] for s, _ in SERVERS if wl in data[s]}
            row(label, name, values, kind, ratios=fig != "errors")
    mib = lambda s, k: data[s][k] / 1024 if k in data[s] else None
    for when, figure, key in (
            ("all GET/POST load", "peak RSS of process tree (MiB)", "rss_peak"),
            ("after seeding, idle", "RSS of process tree (MiB)", "rss_idle")):
        alone = {s: mib(s, f"{key}_kib") for s, _ in SERVERS}
        row(when, figure, alone, "mib")
        # articles-pg with its database: set against the others' own figure
        # (they have no other process).
        with_pg = {s: mib(s, f"{key}_with_pg_kib") for s, _ in SERVERS}
        if any(v is not None for v in with_pg.values()):
            row(when, figure.replace(" (MiB)", " + PostgreSQL's processes' Pss (MiB)"),
                with_pg, "mib", denominators=alone)
    row("exec → first 200 on GET /articles/1", "cold start, median of 5 (ms)",
        {s: data[s].get("coldstart") for s, _ in SERVERS}, "ms")
    row("worst measured run", "CPU % taken by others: server's core / wrk's core",
        {s: "{:.1f} / {:.1f}".format(*data[s]["disturbance"])
         for s, _ in SERVERS if "disturbance" in data[s]}, "text", ratios=False)
    row("release binary", "stripped size (MiB)",
        {s: data[s]["binary_bytes"] / 2**20 if "binary_bytes" in data[s] else None
         for s, _ in SERVERS}, "mib")
    return "\n".join("| " + " | ".join(r) + " |" for r in rows)


def main():
    outdir, results = Path(sys.argv[1]), Path(sys.argv[2])
    notes = (outdir / "notes.md").read_text() if (outdir / "notes.md").exists() else ""
    text = "# Benchmark results\n\n" + table(load(outdir)) + "\n\n" + notes
    results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
