#!/bin/bash
# The smoke profile's whole experiment grid trained twice from fresh clones of this repository:
# once with `mura-thesis train --executor local` (one run at a time) and once with
# `--executor ray` (a local Ray with this machine's CPUs), then compared run by run; finally
# the book is built from the Ray clone and the run store is checked to be unchanged (the book
# trains nothing).  Prints wall times, the machine's load and the comparison.
#
#   bash benchmarks/smoke_grid_executors.sh [WORK_DIR]     (default: a new temporary folder)
#
# Uses this checkout's .venv; the synthetic data are generated once and copied, so that both
# timings cover training (and the preprocessing cache) only.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=$REPO/.venv/bin/python
WORK=${1:-$(mktemp -d)}
cli() { (cd "$1" && shift && PYTHONPATH="$PWD" "$PY" -m mura_thesis.cli "$@"); }
# elapsed LOG COMMAND...: runs COMMAND with its output in LOG; prints the wall seconds.
elapsed() { local log=$1; shift; local s=$(date +%s.%N); "$@" > "$log" 2>&1 || true; echo "$(date +%s.%N) - $s" | bc; }

for side in local ray; do
  rm -rf "$WORK/$side"
  git clone -q "$REPO" "$WORK/$side"
done
# The data (and the pretraining corpus) once, outside the timings.
cli "$WORK/local" plan --profile smoke 2>/dev/null | tail -1
cp -r "$WORK/local/data/synthetic" "$WORK/ray/data/"

echo "CPUs: $(nproc); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for side in local ray; do
  seconds=$(elapsed "$WORK/$side.log" cli "$WORK/$side" train --profile smoke --executor "$side")
  echo "train --executor $side: $(printf '%.1f' "$seconds") s wall; load after: $(cut -d' ' -f1-3 /proc/loadavg)"
done

cd "$WORK"
keys() { find "$1/runs" -mindepth 2 -maxdepth 2 -name run.json -printf '%h\n' | xargs -n1 basename | sort; }
keys local > local.keys; keys ray > ray.keys
echo "runs: local $(wc -l < local.keys), ray $(wc -l < ray.keys)"
diff local.keys ray.keys > /dev/null && echo "same run keys" || echo "DIFFERENT run keys"
same=0; differ=0
for key in $(cat local.keys); do
  if cmp -s "local/runs/$key/predictions.csv" "ray/runs/$key/predictions.csv"; then same=$((same + 1)); else differ=$((differ + 1)); fi
done
echo "predictions.csv byte-identical: $same, different: $differ"

stat -c '%n %Y' ray/runs/*/run.json | sort > before.stat
seconds=$(elapsed "$WORK/book.log" cli "$WORK/ray" build --profile smoke)
stat -c '%n %Y' ray/runs/*/run.json | sort > after.stat
keys ray > ray.keys.after
echo "book (smoke) from the Ray clone: $(printf '%.1f' "$seconds") s wall"
if diff -q before.stat after.stat > /dev/null && diff -q ray.keys ray.keys.after > /dev/null \
   && ! grep -q "training run" "$WORK/book.log"; then
  echo "the book trained nothing: run store unchanged"
else
  echo "the book TRAINED: run store changed"
fi
