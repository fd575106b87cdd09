"""Run one wrk measurement and tell whether anything else disturbed it.

    runwrk.py OUTFILE SERVER_PIDS SERVER_CPU LOAD_CPU -- wrk ARGS...

SERVER_PIDS is one pid or several, comma-separated (articles-pg: the
articles process and PostgreSQL's postmaster, both part of the server).
Writes wrk's output to OUTFILE, then appends a line
`disturbance: S L` and prints `S L` on stdout: the share (%) of SERVER_CPU
used during the run by anything but the server's process trees, and of
LOAD_CPU by anything but wrk and this helper (run it pinned to LOAD_CPU,
wrk inherits that). Busy time is every tick but idle and iowait: softirq
time (the loopback traffic) must be in it, since the kernel also charges it
to the process it interrupted. A clean run reads close to 0; run.sh repeats
runs that read more than a few %.
"""
import os
import resource
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(cpu):
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return sum(v) - v[3] - v[4], sum(v)  # all but idle, iowait
    raise SystemExit(f"no cpu{cpu} in /proc/stat")


def tree_ticks(roots):
    """utime + stime of the roots and all their descendants (live ones)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    total, todo = 0, list(roots)
    while todo:
        pid = todo.pop()
        total += procs.get(pid, (0, 0))[1]
        todo.extend(p for p, (ppid, _) in procs.items() if ppid == pid)
    return total


def rusage_ticks(who):
    r = resource.getrusage(who)
    return (r.ru_utime + r.ru_stime) * TICK


def main():
    outfile, server_pid = sys.argv[1], [int(p) for p in sys.argv[2].split(",")]
    server_cpu, load_cpu = int(sys.argv[3]), int(sys.argv[4])
    cmd = sys.argv[sys.argv.index("--") + 1:]

    cpu0, cpu1 = cpu_ticks(server_cpu), cpu_ticks(load_cpu)
    tree0, self0 = tree_ticks(server_pid), rusage_ticks(resource.RUSAGE_SELF)
    with open(outfile, "w") as out:
        subprocess.run(cmd, stdout=out, check=True)
    tree1, self1 = tree_ticks(server_pid), rusage_ticks(resource.RUSAGE_SELF)
    cpu0b, cpu1b = cpu_ticks(server_cpu), cpu_ticks(load_cpu)

    def other_pct(before, after, ours):
        busy, total = after[0] - before[0], after[1] - before[1]
        return max(0.0, 100.0 * (busy - ours) / max(1, total))

    server_other = other_pct(cpu0, cpu0b, tree1 - tree0)
    load_other = other_pct(cpu1, cpu1b, rusage_ticks(resource.RUSAGE_CHILDREN)
                           + self1 - self0)
    with open(outfile, "a") as out:
        out.write(f"disturbance: {server_other:.1f} {load_other:.1f}\n")
    print(f"{server_other:.1f} {load_other:.1f}")


if __name__ == "__main__":
    main()
