"""Memory of a server's process tree, and waiting for a quiet machine.

    monitor.py PID OUTFILE [--plus-pss PG_PID OUTFILE2]
                                    sample until SIGTERM, then write the peak
    monitor.py PID --once [--plus-pss PG_PID]
                                    print the tree's RSS now, in KiB
    monitor.py --wait-idle SECONDS  wait until both CPUs are <10 % busy for a
                                    second, at most SECONDS

Sampling: every 100 ms, VmRSS summed over PID and all its descendants
(gunicorn's and uvicorn's workers included); the maximum, in KiB, goes to
OUTFILE on SIGTERM/SIGINT.

--plus-pss (articles-pg): a second figure, every 10th sample (once a
second: reading smaps_rollup costs a few ms, and this sampler shares wrk's
core): the above plus the Pss (proportional set size,
/proc/PID/smaps_rollup) summed over PG_PID (PostgreSQL's postmaster) and
all its descendants; its maximum goes to OUTFILE2. Pss, not VmRSS, for PostgreSQL: its shared buffers are
mapped by every backend, and summing VmRSS would count each page once per
process that touched it; Pss splits a shared page among its sharers, so the
sum counts it once.
"""
import os
import signal
import sys
import time


def tree(root):
    """root and its descendants, from the children of each process's main
    thread (/proc/PID/task/PID/children): every contender, and PostgreSQL's
    postmaster, forks from its main thread. A sample costs about 0.1 ms
    this way; scanning every process in /proc cost 1.3 ms, on wrk's core,
    every 100 ms, and delayed the responses wrk timed meanwhile (p99 at 32
    connections was 2.2-3.6 ms with it, 1.2-1.6 ms without, for `articles`
    and the ceiling alike)."""
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo.extend(int(child) for child in f.read().split())
        except OSError:
            pass  # exited meanwhile
    return pids


def rss_kib(pids, source="status", field="VmRSS:"):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{source}") as f:
                for line in f:
                    if line.startswith(field):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass  # exited between the scan and the read
    return total


def pss_kib(pids):
    return rss_kib(pids, "smaps_rollup", "Pss:")


def busy_pct():
    """Busy share of the busier CPU over one second."""
    def ticks():
        with open("/proc/stat") as f:
            return [[int(x) for x in line.split()[1:]] for line in f
                    if line.startswith("cpu") and line[3].isdigit()]
    before = ticks()
    time.sleep(1)
    after = ticks()
    # busy = every tick but idle and iowait
    return max(100.0 * (1 - (a[3] + a[4] - b[3] - b[4]) / max(1, sum(a) - sum(b)))
               for a, b in zip(after, before))


def wait_idle(limit):
    """The machine's 2 cores are shared with whatever else runs (builds, test
    suites): give such work up to `limit` seconds to finish first."""
    deadline = time.time() + limit
    while (busy := busy_pct()) >= 10:
        if time.time() > deadline:
            print(f"warning: CPUs still {busy:.0f}% busy after {limit:.0f} s; "
                  "measuring anyway", file=sys.stderr)
            return


def main():
    if sys.argv[1] == "--wait-idle":
        wait_idle(float(sys.argv[2]))
        return
    root, outfile = int(sys.argv[1]), sys.argv[2]
    pg = outfile2 = None
    if "--plus-pss" in sys.argv:
        i = sys.argv.index("--plus-pss")
        pg = int(sys.argv[i + 1])
        outfile2 = sys.argv[i + 2] if len(sys.argv) > i + 2 else None
    if outfile == "--once":
        own = rss_kib(tree(root))
        print(own if pg is None else own + pss_kib(tree(pg)))
        return
    peak = peak2 = n = 0

    def finish(*_):
        with open(outfile, "w") as f:
            f.write(f"{peak}\n")
        if outfile2:
            with open(outfile2, "w") as f:
                f.write(f"{peak2}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    while os.path.exists(f"/proc/{root}"):
        own = rss_kib(tree(root))
        peak = max(peak, own)
        if outfile2 and n % 10 == 0:
            peak2 = max(peak2, own + pss_kib(tree(pg)))
        n += 1
        time.sleep(0.1)
    finish()


if __name__ == "__main__":
    main()
