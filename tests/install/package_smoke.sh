#!/usr/bin/env bash
# The Debian package as a site would use it: build it with CPack, install
# it, `module load stasis` from the modulefile it ships, read
# `man stasis-launch`, run `stasis doctor`, and run the count demo with the
# installed binary and agent (not the build tree's).  Removes the package
# at the end.  Installs system packages, so it runs only as root in CI (or
# with STASIS_TEST_PACKAGE=1); otherwise it exits 77 (skipped).
#   package_smoke.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
if [ "$(id -u)" -ne 0 ] || { [ "${CI:-}" != true ] && [ "${STASIS_TEST_PACKAGE:-}" != 1 ]; }; then
  echo "skipped: installs the .deb system-wide; runs as root in CI or with STASIS_TEST_PACKAGE=1"
  exit 77
fi
for tool in cpack dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (apt-get install cmake dpkg-dev)"; exit 1; }
done
[ -f /usr/share/modules/init/bash ] || { echo "FAIL: environment-modules is not installed"; exit 1; }
if dpkg-query -W -f='${Status}' stasis 2>/dev/null | grep -q 'install ok installed'; then
  echo "FAIL: a stasis package is already installed; this test would replace it"; exit 1
fi
out=$(mktemp -d /tmp/stasis-pkg.XXXXXX)
chmod 755 "$out"
cleanup() { dpkg -P stasis >/dev/null 2>&1 || true; rm -rf "$out"; }
trap cleanup EXIT

echo "== cpack -G DEB"
(cd "$build" && cpack -G DEB -B "$out" >"$out/cpack.log") || { cat "$out/cpack.log"; exit 1; }
deb=$(ls "$out"/stasis_*.deb)
dpkg-deb --info "$deb" | sed -n '/Package:/,/Description:/p'
echo "== apt-get install $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$out/apt.log" 2>&1 ||
  { cat "$out/apt.log"; exit 1; }

echo "== module load stasis; man stasis-launch; stasis doctor; the count demo"
cp "$build/workloads/count" "$out/count"
env -i PATH=/usr/bin:/bin HOME=/tmp LANG=C.UTF-8 COUNT="$out/count" MANWIDTH=100 bash -euo pipefail -c '
  source /usr/share/modules/init/bash
  module use /usr/share/modulefiles-tcl
  module load stasis
  module list 2>&1 | grep -q stasis
  [ "$STASIS_ROOT" = /usr ] || { echo "FAIL: STASIS_ROOT=$STASIS_ROOT"; exit 1; }
  [ "$(command -v stasis)" = /usr/bin/stasis ] || { echo "FAIL: stasis is $(command -v stasis)"; exit 1; }
  man stasis-launch | grep -q -- "--interval" || { echo "FAIL: man stasis-launch"; exit 1; }
  man -w stasis-image >/dev/null
  stasis doctor -c /tmp | tee /tmp/stasis-pkg-doctor.txt
  # The installed binary finds the installed agent, relative to itself.
  grep -qE "agent library +/usr/lib/stasis/" /tmp/stasis-pkg-doctor.txt || { echo "FAIL: agent"; exit 1; }
  rm -f /tmp/stasis-pkg-doctor.txt
  STASIS=stasis '"$src"'/scripts/demo.sh
'
echo "PASS: package installed, module loaded, man page read, doctor and demo ran from /usr"
