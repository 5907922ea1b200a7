#!/usr/bin/python3
"""late_resource.py N DELAY TRIGGER MODE ARG: prints 1..N (flushed), one
every DELAY seconds.  Once the file TRIGGER exists, it takes a resource and
keeps it to the end, printing one line about it:
  MODE listen: a TCP listener on 127.0.0.1:ARG ("listening ARG");
  MODE open:   the file ARG, open for reading ("opened ARG").
So a checkpoint taken before TRIGGER has no such resource and one taken
after has it: restarting the later one can fail for a reason outside the
checkpoint (the port taken, the file gone), and must not fall back to the
earlier one (tests/e2e/test_restart_policy.py)."""
import os
import socket
import sys
import time

n, delay, trigger, mode, arg = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
held = None
for i in range(1, n + 1):
    if held is None and os.path.exists(trigger):
        if mode == "listen":
            held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.bind(("127.0.0.1", int(arg)))
            held.listen(1)
            print(f"listening {arg}", flush=True)
        else:
            held = open(arg, "rb")
            print(f"opened {arg}", flush=True)
    print(i, flush=True)
    time.sleep(delay)
