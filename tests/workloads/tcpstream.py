"""tcpstream.py N DELAY: TCP over loopback between two processes of a job.
The receiver binds 127.0.0.1 port 0, listens (and keeps listening), and
starts `tcpstream.py client PORT N` (a separate python3, told the port on
its command line).  The client sends N numbered records
"<i> <payload depending on i>\\n" as fast as it can, then shuts down its
sending side and reads the receiver's acks until end of file.  The receiver
reads records one by one, sleeping DELAY after each (so most of them wait in
the socket buffers), checks that each is the next number with the right
payload (none lost, repeated or altered), sends "ack <i>\\n" after every 10th,
prints "record <i>" for every 10th, and at the end
  "received <N> records in order" and "client exit <status>".
The client checks the acks it got and exits 0 only if they are all there
(tests/e2e/test_jobs.py)."""
import hashlib
import socket
import subprocess
import sys
import time


def payload(i):
    return hashlib.sha256(str(i).encode()).hexdigest() * (1 + i % 5)


def client(port, n):
    s = socket.create_connection(("127.0.0.1", port))
    out = b"".join(f"{i} {payload(i)}\n".encode() for i in range(n))
    s.sendall(out)
    s.shutdown(socket.SHUT_WR)
    acks = s.makefile("rb").read().decode().split("\n")[:-1]
    want = [f"ack {i}" for i in range(0, n, 10)]
    if acks != want:
        sys.stderr.write(f"tcpstream client: acks {acks[:5]}... differ from {want[:5]}...\n")
        sys.exit(1)
    sys.exit(0)


def server(n, delay):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]
    child = subprocess.Popen([sys.executable, __file__, "client", str(port), str(n)])
    conn, _ = ls.accept()
    f = conn.makefile("rb")
    for i in range(n):
        line = f.readline().decode()
        want = f"{i} {payload(i)}\n"
        if line != want:
            print(f"record {i}: got {line[:40]!r}, expected {want[:40]!r}", flush=True)
            sys.exit(1)
        if i % 10 == 0:
            conn.sendall(f"ack {i}\n".encode())
            print(f"record {i}", flush=True)
        time.sleep(delay)
    extra = f.read()
    if extra:
        print(f"{len(extra)} bytes after the last record", flush=True)
        sys.exit(1)
    conn.shutdown(socket.SHUT_WR)  # end of file for the client's ack reader
    f.close()
    conn.close()
    print(f"received {n} records in order", flush=True)
    print(f"client exit {child.wait()}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(int(sys.argv[2]), int(sys.argv[3]))
    else:
        server(int(sys.argv[1]), float(sys.argv[2]))
