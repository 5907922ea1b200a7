# Sourced by the examples: locate stasis and the workloads, pick a port.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STASIS=${STASIS:-$REPO/build/bin/stasis}
WORKLOADS=$REPO/build/workloads
PYWORKLOADS=$REPO/tests/workloads
[ -x "$STASIS" ] || { echo "build first: ./scripts/quickstart.sh (no $STASIS)" >&2; exit 1; }
export STASIS_COORD_PORT=${STASIS_COORD_PORT:-$((20000 + RANDOM % 20000))}
WORK=$(mktemp -d /tmp/stasis-example.XXXXXX)
export STASIS_CKPT_DIR=$WORK/ckpt
mkdir -p "$STASIS_CKPT_DIR"
trap '"$STASIS" quit >/dev/null 2>&1 || true' EXIT

# wait_for_line FILE LINE: waits (up to 60 s) until FILE has the line LINE.
wait_for_line() {
  for _ in $(seq 600); do grep -qx -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; return 1
}
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
