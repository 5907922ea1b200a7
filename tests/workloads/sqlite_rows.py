#!/usr/bin/python3
# sqlite_rows.py DB TRANSACTIONS PERIOD_MS [JOURNAL_MODE]
# Inserts rows into an SQLite database in transactions (4 rows each, with
# explicit ids, plus an UPDATE of one counter row: pages rewritten inside the
# file's size, not only appended), printing "committed N" after each.  At the
# end prints the row count, the counter, PRAGMA integrity_check and "done".
# tests/e2e/test_file_fidelity.py checkpoints it, lets the lost run commit
# more, kills everything and restarts: the database must be as at the
# checkpoint, so the output equals an uninterrupted run's.
import sqlite3
import sys
import time

db, total, period = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) / 1000.0
mode = sys.argv[4] if len(sys.argv) > 4 else "delete"
con = sqlite3.connect(db, isolation_level=None)
con.execute("PRAGMA journal_mode=%s" % mode)
con.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT)")
con.execute("CREATE TABLE meta (k TEXT PRIMARY KEY, n INTEGER)")
con.execute("INSERT INTO meta VALUES ('tx', 0)")
for t in range(1, total + 1):
    con.execute("BEGIN")
    for r in range(4):
        i = (t - 1) * 4 + r
        con.execute("INSERT INTO rows VALUES (?, ?)", (i, ("row %d " % i) * 20))
    con.execute("UPDATE meta SET n = n + 1 WHERE k = 'tx'")
    con.execute("COMMIT")
    print("committed %d" % t, flush=True)
    time.sleep(period)
print("rows %d" % con.execute("SELECT count(*) FROM rows").fetchone()[0])
print("tx %d" % con.execute("SELECT n FROM meta WHERE k = 'tx'").fetchone()[0])
print("integrity %s" % con.execute("PRAGMA integrity_check").fetchone()[0])
print("done", flush=True)
