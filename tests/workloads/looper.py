#!/usr/bin/python3
# looper.py: the second form of the Fred Hutch seed's looper.py: the output
# file is opened ONCE in append mode and kept open for the whole run.
#   looper.py [N=100] [DELAY_SECONDS=1] [OUTFILE=$TMPDIR/looper.txt]
# Each line "i  node:<host>  pid:<pid>  parent-pid:<ppid>" is written and
# flushed to OUTFILE and printed (flushed) to stdout.
import os
import socket
import sys
import time

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
delay = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
outfile = sys.argv[3] if len(sys.argv) > 3 else '%s/looper.txt' % os.environ.get('TMPDIR', '/tmp')

print('writing to %s ...' % outfile, flush=True)
fh = open(outfile, 'a')
for i in range(1, n + 1):
    pid = os.getpid()
    ppid = os.getppid()
    line = "%s  node:%s  pid:%s  parent-pid:%s" % (str(i), socket.gethostname(), pid, ppid)
    fh.write(line + '\n')
    fh.flush()
    print(line, flush=True)
    if i < n:
        time.sleep(delay)
fh.close()
