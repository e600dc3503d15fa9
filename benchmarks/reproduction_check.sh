#!/bin/bash
# Does the thesis reproduce its conclusions?  The same commit built twice from fresh clones, under
# two numeric settings: the default (one TensorFlow thread per run, as many runs side by side as
# there are cores) and two threads per run (MURA_THREADS=2, so one run at a time on 2 cores).  The
# thread count changes the order of oneDNN's reductions, so every run retrains to different
# weights: a faithful stand-in for building on another machine.  The builds run one after the
# other, so that each one's wall time is that of a quiet machine; then `mura-thesis compare` sets
# their results manifests against each other: verdicts that agree, that flip (higher in one build,
# lower in the other) or that are undetermined in one of them.
#
#   bash benchmarks/reproduction_check.sh [PROFILE] [WORK_DIR]   (default: demo, a new temporary folder)
#
# Uses this checkout's .venv.  Prints each build's wall time and the comparison; exits 1 if a
# verdict flipped.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=$REPO/.venv/bin/python
PROFILE=${1:-demo}
WORK=${2:-$(mktemp -d)}
declare -A THREADS=([default]="" [two]="2")

for side in default two; do
  rm -rf "$WORK/$side"
  git clone -q "$REPO" "$WORK/$side"
done
echo "commit $(git -C "$REPO" rev-parse --short HEAD); CPUs: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for side in default two; do
  (
    cd "$WORK/$side"
    start=$(date +%s) rc=0
    env ${THREADS[$side]:+MURA_THREADS=${THREADS[$side]}} PYTHONPATH="$PWD" \
      "$PY" -m mura_thesis.cli build --profile "$PROFILE" > "$WORK/$side.log" 2>&1 || rc=$?
    echo "build ($side threads): $(( $(date +%s) - start )) s wall, rc $rc; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
  )
done
cd "$WORK/default"
PYTHONPATH="$PWD" "$PY" -m mura_thesis.cli compare "$WORK/default" "$WORK/two"
