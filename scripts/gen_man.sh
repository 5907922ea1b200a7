#!/usr/bin/env bash
# Generates the man pages from the one source of the command line, the
# `--help` text of `stasis` and each subcommand (help2man(1)), plus the
# hand-written sections in docs/man/<page>.h2m (examples, environment, see
# also), and stasis-image(5) from docs/image-format.md (scripts/md2man.py).
# The pages cannot drift from --help: they are made from it at every build.
#   gen_man.sh STASIS_BIN SOURCE_DIR OUT_DIR VERSION
set -euo pipefail
bin=$1 src=$2 out=$3 version=$4
mkdir -p "$out/man1" "$out/man5"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

page() {  # page NAME SUBCOMMAND DESCRIPTION
  local name=$1 sub=$2 what=$3 wrapper="$work/$1"
  printf '#!/bin/sh\nexec "%s" %s "$@"\n' "$bin" "$sub" > "$wrapper"
  chmod +x "$wrapper"
  local include=()
  [ -f "$src/docs/man/$name.h2m" ] && include=(--include "$src/docs/man/$name.h2m")
  help2man --no-info --no-discard-stderr --version-string="$version" --name="$what" \
    --source="Stasis $version" --manual="Stasis manual" "${include[@]}" \
    --output="$out/man1/$name.1" "$wrapper"
}

page stasis "" "transparent checkpoint/restart of unmodified Linux programs"
page stasis-launch launch "run a program under Stasis so that it can be checkpointed"
page stasis-run run "launch or restart a batch job, checkpoint and requeue it on Slurm's signal"
page stasis-checkpoint checkpoint "checkpoint the running job now (and optionally stop it)"
page stasis-restart restart "restart a job from its newest complete checkpoint"
page stasis-status status "show the running job and its last checkpoint"
page stasis-inspect inspect "show and verify checkpoint images and manifests"
page stasis-doctor doctor "check what this node allows Stasis to do, and how to fix it"
page stasis-coordinator coordinator "run a coordinator for a job"
page stasis-quit quit "stop the job and its coordinator"
python3 "$src/scripts/md2man.py" --name stasis-image --section 5 --version "$version" \
  --title "format of Stasis checkpoint images and manifests" \
  "$src/docs/image-format.md" > "$out/man5/stasis-image.5"
