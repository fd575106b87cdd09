"""Change-feed delivery latency: STREAMS open `GET /events` streams while
writers POST at RATE articles per second; how long after each write is
acknowledged every stream has its event.

    python3 bench/feed.py BINARY [--streams 64] [--rate 1000] [--seconds 10]

Starts BINARY on a fresh SQLite database in a temporary directory (port 0).
Writers pace their POSTs on a schedule (several keep-alive connections, so a
slow answer does not hold the schedule back); one reader thread follows all
streams with `selectors` and timestamps each chunk as it arrives. For every
(stream, write) pair the latency is arrival minus the write's
acknowledgement (the client saw 201); a second figure counts from when the
POST was sent, which bounds it from above (the commit is in between).
Prints p50, p99 and max of both, the rate achieved and whether every stream
got every event once, in order.
"""
import argparse
import http.client
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

TITLE = re.compile(rb'"seq":(\d+),"type":"article\.created".*?"title":"lat-(\d+)"')


def start(binary, directory):
    proc = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--db", os.path.join(directory, "db"),
         "--max-streams", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "RUST_LOG": "warn"})
    line = proc.stdout.readline().decode()
    port = int(line.rsplit(":", 1)[1])
    return proc, port


def open_stream(port):
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    sock.setblocking(False)
    return sock


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    args = argparse.ArgumentParser()
    args.add_argument("binary")
    args.add_argument("--streams", type=int, default=64)
    args.add_argument("--rate", type=int, default=1000)
    args.add_argument("--seconds", type=float, default=10)
    args.add_argument("--writers", type=int, default=8)
    opts = args.parse_args()
    total = int(opts.rate * opts.seconds)

    with tempfile.TemporaryDirectory() as directory:
        proc, port = start(opts.binary, directory)
        try:
            streams = [open_stream(port) for _ in range(opts.streams)]
            arrivals = [dict() for _ in streams]  # write number -> arrival time
            order_ok = [True] * len(streams)
            stop = threading.Event()

            def read():
                sel = selectors.DefaultSelector()
                pending = [b""] * len(streams)
                last_seq = [0] * len(streams)
                for i, sock in enumerate(streams):
                    sel.register(sock, selectors.EVENT_READ, i)
                while not stop.is_set():
                    for key, _ in sel.select(timeout=0.1):
                        i = key.data
                        try:
                            chunk = key.fileobj.recv(1 << 20)
                        except BlockingIOError:
                            continue
                        now = time.perf_counter()
                        data = pending[i] + chunk
                        cut = data.rfind(b"\n\n") + 2
                        whole, pending[i] = data[:cut], data[cut:]
                        for match in TITLE.finditer(whole):
                            seq, n = int(match.group(1)), int(match.group(2))
                            if seq <= last_seq[i] or n in arrivals[i]:
                                order_ok[i] = False
                            last_seq[i] = seq
                            arrivals[i][n] = now

            reader = threading.Thread(target=read, daemon=True)
            reader.start()

            sent = [0.0] * total
            acked = [0.0] * total
            begin = time.perf_counter() + 0.2
            body = json.dumps({"title": "lat-{}", "content": "x" * 200, "tags": ["bench"]})

            def write(k):
                conn = http.client.HTTPConnection("127.0.0.1", port)
                for n in range(k, total, opts.writers):
                    due = begin + n / opts.rate
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    sent[n] = time.perf_counter()
                    conn.request("POST", "/articles", body.replace("{}", str(n)),
                                 {"Content-Type": "application/json"})
                    resp = conn.getresponse()
                    resp.read()
                    acked[n] = time.perf_counter()
                    assert resp.status == 201, resp.status

            writers = [threading.Thread(target=write, args=(k,)) for k in range(opts.writers)]
            for w in writers:
                w.start()
            for w in writers:
                w.join()
            elapsed = max(acked) - begin
            deadline = time.time() + 10
            while time.time() < deadline and any(len(a) < total for a in arrivals):
                time.sleep(0.05)
            stop.set()
            reader.join()
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        finally:
            proc.terminate()
            proc.wait()

    from_ack = [(a[n] - acked[n]) * 1000 for a in arrivals for n in a]
    from_send = [(a[n] - sent[n]) * 1000 for a in arrivals for n in a]
    post = [(acked[n] - sent[n]) * 1000 for n in range(total)]
    complete = all(len(a) == total for a in arrivals)
    print(f"streams {opts.streams}, writes {total} at {opts.rate}/s asked, "
          f"{total / elapsed:.0f}/s achieved; every stream had every event once "
          f"in order: {complete and all(order_ok)}; server CPU {cpu:.1f} s "
          f"({100 * cpu / elapsed:.0f}% of one core)")
    print("| ms | p50 | p99 | max |")
    print("| --- | ---: | ---: | ---: |")
    for name, values in [("POST answered (send to 201)", post),
                         ("event at a stream, from the 201", from_ack),
                         ("event at a stream, from the send", from_send)]:
        print(f"| {name} | {statistics.median(values):.2f} | "
              f"{percentile(values, 99):.2f} | {max(values):.2f} |")
    if not complete:
        sys.exit(1)


if __name__ == "__main__":
    main()
