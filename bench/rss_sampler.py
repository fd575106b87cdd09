"""Peak resident memory of a process tree, sampled every 100 ms.

    rss_sampler.py PID OUTFILE
    rss_sampler.py PID --once      print the tree's RSS now, in KiB

Sums VmRSS of PID and all its descendants (gunicorn's and uvicorn's workers
included) at each sample and keeps the maximum. On SIGTERM/SIGINT it writes
the peak in KiB to OUTFILE and exits.
"""
import os
import signal
import sys
import time


def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may contain spaces and parentheses: split after it.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_rss_kib(root):
    kids, total, todo = children_map(), 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass  # exited between the scan and the read
    return total


def main():
    root, outfile = int(sys.argv[1]), sys.argv[2]
    if outfile == "--once":
        print(tree_rss_kib(root))
        return
    peak = 0

    def finish(*_):
        with open(outfile, "w") as f:
            f.write(f"{peak}\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    while os.path.exists(f"/proc/{root}"):
        peak = max(peak, tree_rss_kib(root))
        time.sleep(0.1)
    finish()


if __name__ == "__main__":
    main()
