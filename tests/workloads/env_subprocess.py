"""env_subprocess: Python's subprocess with env={} (an empty environment),
for tests/e2e/test_partial.py.
    env_subprocess.py EXEC_ENV N DELAY
runs `EXEC_ENV child N DELAY` (tests/workloads/exec_env.c) and prints
"parent: child status <code>"."""
import subprocess
import sys

code = subprocess.run([sys.argv[1], "child", sys.argv[2], sys.argv[3]], env={}).returncode
print(f"parent: child status {code}", flush=True)
