"""Cold start: time from exec of a server to its first 200 answer.

    coldstart.py PORT PATH RUNS -- COMMAND...

Starts COMMAND (which must listen on 127.0.0.1:PORT) RUNS times; each time
polls GET PATH in a tight loop (a fresh connection per attempt, 1 ms apart)
and records the milliseconds from just before exec to the first 200. Then it
stops the server with SIGTERM (SIGKILL after 10 s) before the next run.
Prints the median and all samples as JSON on stdout.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time


def status_of(port, path):
    """Status code of GET path, or None if nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\n\r\n".encode())
            head = s.recv(64)
            return int(head.split()[1]) if head.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        return None


def one_run(port, path, cmd):
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        while True:
            if status_of(port, path) == 200:
                return (time.perf_counter() - t0) * 1000
            if proc.poll() is not None:
                sys.exit(f"server exited with {proc.returncode}: {cmd}")
            if time.perf_counter() - t0 > 60:
                sys.exit(f"no 200 within 60 s: {cmd}")
            time.sleep(0.001)
    finally:
        # Our own child in its own session: end its whole group (gunicorn
        # workers included) and reap it, so the port is free for the next run.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.time() + 10
        while status_of(port, path) is not None and time.time() < deadline:
            time.sleep(0.01)


def main():
    # Turn SIGTERM (from run.sh's cleanup) into SystemExit so the finally
    # block above still stops the server, which lives in its own session.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    port, path, runs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    samples = [one_run(port, path, cmd) for _ in range(runs)]
    print(json.dumps({"median_ms": statistics.median(samples),
                      "samples_ms": [round(s, 1) for s in samples]}))


if __name__ == "__main__":
    main()
