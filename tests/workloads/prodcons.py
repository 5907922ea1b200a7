"""prodcons.py MODE N DELAY: a producer process sends N records to a
consumer process as fast as it can; the consumer reads them one by one,
sleeping DELAY after each (so most bytes wait in the channel), and prints
  "rec <i> len <size> crc <crc32 of the record>"
for every record, then "total <bytes> sha256 <digest of every byte>" and
"producer exit <status>".  Record i has a size and contents that depend only
on i.  MODE is the channel:
  pipe        os.pipe(), producer forked
  socketpair  AF_UNIX SOCK_STREAM socketpair
  dgram       AF_UNIX SOCK_DGRAM socketpair, one datagram per record
  unix        a named AF_UNIX stream socket in a fresh directory under
              $TMPDIR: the consumer binds and listens (and keeps listening),
              the forked producer connects
(tests/e2e/test_jobs.py)."""
import hashlib
import os
import random
import socket
import sys
import tempfile
import time
import zlib


def record(i):
    size = 1000 + (i * 7919) % 7000
    return random.Random(i).randbytes(size)


def send_all(send, data):
    view = memoryview(data)
    while view:
        n = send(view)
        view = view[n:]


def recv_exact(recv, size):
    parts = []
    left = size
    while left:
        chunk = recv(left)
        if not chunk:
            raise SystemExit(f"end of data with {left} of {size} bytes missing")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def main():
    mode, n, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    sockdir = None
    if mode == "pipe":
        r, w = os.pipe()
    elif mode in ("socketpair", "dgram"):
        kind = socket.SOCK_STREAM if mode == "socketpair" else socket.SOCK_DGRAM
        a, b = socket.socketpair(socket.AF_UNIX, kind)
    elif mode == "unix":
        sockdir = tempfile.mkdtemp(prefix="prodcons-")
        path = os.path.join(sockdir, "sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen(1)
    else:
        raise SystemExit(f"unknown mode {mode}")

    pid = os.fork()
    if pid == 0:  # producer
        if mode == "pipe":
            os.close(r)
            send = lambda v: os.write(w, v)
        elif mode == "unix":
            listener.close()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            send = s.send
        else:
            a.close()
            s = b
            send = s.send
        for i in range(n):
            data = record(i)
            if mode == "dgram":
                assert s.send(data) == len(data)
            else:
                send_all(send, data)
        os._exit(0)

    # consumer
    if mode == "pipe":
        os.close(w)
        recv = lambda k: os.read(r, k)
    elif mode == "unix":
        conn, _ = listener.accept()
        recv = conn.recv
    else:
        b.close()
        recv = a.recv
    total = hashlib.sha256()
    nbytes = 0
    for i in range(n):
        size = len(record(i))
        if mode == "dgram":
            data = a.recv(65536)
            if len(data) != size:
                raise SystemExit(f"datagram {i}: {len(data)} bytes, expected {size}")
        else:
            data = recv_exact(recv, size)
        total.update(data)
        nbytes += len(data)
        print(f"rec {i} len {size} crc {zlib.crc32(data):08x}", flush=True)
        time.sleep(delay)
    if mode != "dgram" and recv(1) != b"":
        raise SystemExit("bytes after the last record")
    print(f"total {nbytes} sha256 {total.hexdigest()}", flush=True)
    _, status = os.waitpid(pid, 0)
    print(f"producer exit {os.waitstatus_to_exitcode(status)}", flush=True)
    if sockdir:
        os.unlink(path)
        os.rmdir(sockdir)


if __name__ == "__main__":
    main()
