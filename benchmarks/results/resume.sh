#!/usr/bin/env bash
# Run (or resume) the full eval runs: frozen worktree at the runs' commit, same paths, then the same
# commands (finished questions come from the cache). See benchmarks/results/README.md.
#   bash benchmarks/results/resume.sh            # from the repository root; runs in the foreground,
#                                                # checkpointing the caches locally (never committed)
#   bash benchmarks/results/resume.sh handover   # a run must go on in another session: its cache as
#                                                # parts in the results folder, to commit once
#   bash benchmarks/results/resume.sh finish     # the runs are done: report, charts and summary into
#                                                # the results folders; cache parts removed
set -euo pipefail
MODE=${1:-run}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
RESULTS=$REPO/benchmarks/results
COMMIT=$(cat "$RESULTS/COMMIT")
# the public sets (docs/data.md); the default is the maintainers' data layout
DATA=${DATA:-$REPO/../shared/data}
# local checkpoints: ignored by git (.gitignore), kept in this working tree between runs
LOCAL=$RESULTS/.checkpoints
CHECKPOINT_S=${CHECKPOINT_S:-900}
WT=/tmp/frozen-$COMMIT
H=/tmp/rag-full/hotpotqa C=/tmp/rag-full/clapnq
# home : cache file (named from the suite path, the home and the collection) : results folder
# (each run's folder is named after COMMIT; hotpotqa-500/ and clapnq-600/ hold the run at 938528b)
# [multihop] mode per set: the default (off) for single-hop ClapNQ, graph for HotpotQA, as docs/multihop.md
# advises for questions that join passages
mode_of() { if [ "$1" = hotpotqa ]; then echo graph; else echo off; fi; }
RUNS="$H:hotpotqa-suite-b2dcdc9e8ff6:hotpotqa-500-$COMMIT $C:clapnq-suite-ea5659c7e058:clapnq-600-$COMMIT"
PARTS="python3 $REPO/benchmarks/eval_cache_parts.py"

checkpoint() {  # the caches as gzipped parts under $LOCAL; nothing is committed
  local home file dir
  for run in $RUNS; do
    IFS=: read -r home file dir <<<"$run"
    if [ -s "$home/eval-cache/$file.jsonl" ]; then $PARTS save "$home/eval-cache/$file.jsonl" "$LOCAL/$dir" >/dev/null || true; fi
  done
}

case $MODE in
  handover)
    for run in $RUNS; do
      IFS=: read -r home file dir <<<"$run"
      if [ ! -s "$home/full/summary.json" ] && [ -s "$home/eval-cache/$file.jsonl" ]; then
        $PARTS save "$home/eval-cache/$file.jsonl" "$RESULTS/$dir"
        echo "commit once: git add benchmarks/results/$dir/cache-*.jsonl.gz && git commit -m '$dir: cache for the next session'"
      fi
    done
    exit 0 ;;
  finish)
    for run in $RUNS; do
      IFS=: read -r home file dir <<<"$run"
      if [ -s "$home/full/summary.json" ]; then
        mkdir -p "$RESULTS/$dir"
        cp "$home/full/report.md" "$home/full"/report-*.png "$home/full/summary.json" "$RESULTS/$dir/"
        rm -f "$RESULTS/$dir"/cache-*.jsonl.gz
        rm -rf "${LOCAL:?}/$dir"
        echo "$dir: report, charts and summary in benchmarks/results/$dir; cache parts removed (TREC run and results.jsonl stay in $home/full)"
      else
        echo "$dir: not finished ($home/full/summary.json missing)" >&2
      fi
    done
    exit 0 ;;
  run) ;;
  *) echo "usage: $0 [run|handover|finish]" >&2; exit 2 ;;
esac

if [ ! -d "$WT" ]; then git -C "$REPO" worktree add -f --detach "$WT" "$COMMIT"; fi
cd "$WT"
test "$(git rev-parse --short=7 HEAD)" = "$COMMIT" || { echo "$WT is not at $COMMIT" >&2; exit 1; }
# llama.cpp built with Intel AMX crashes (SIGSEGV) in VMs that do not enable it: build without (README: Troubleshooting)
AMX_OFF="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if echo | cc $AMX_OFF -E - >/dev/null 2>&1; then
  export CMAKE_ARGS="${CMAKE_ARGS:--DCMAKE_C_FLAGS='$AMX_OFF' -DCMAKE_CXX_FLAGS='$AMX_OFF'}"
fi
if [ ! -x .venv/bin/rag ]; then make install && .venv/bin/pip install -q -e '.[local-llm,eval]'; fi
source .venv/bin/activate
export HF_HUB_OFFLINE=1
# timeouts are not part of the cache keys; a long one lets the run be paused (kill -STOP) for other work
export RAG_LLM_TIMEOUT_S=3600
[ -f /tmp/suites/hotpotqa/suite.jsonl ] || rag eval import hotpotqa "$DATA/hotpotqa-dev-500" --out /tmp/suites/hotpotqa
[ -f /tmp/suites/clapnq/suite.jsonl ] || rag eval import clapnq "$DATA/clapnq-dev" --out /tmp/suites/clapnq
rag --home $H ingest /tmp/suites/hotpotqa/docs -c hotpotqa
rag --home $C ingest /tmp/suites/clapnq/docs -c clapnq
# restore: parts committed by an earlier session's handover, then this tree's local checkpoints
# (restore keeps whichever holds more questions)
for run in $RUNS; do
  IFS=: read -r home file dir <<<"$run"
  for parts in "$RESULTS/$dir" "$LOCAL/$dir"; do
    if ls "$parts"/cache-*.jsonl.gz >/dev/null 2>&1; then $PARTS restore "$home/eval-cache/$file.jsonl" "$parts"; fi
  done
done
mkdir -p $H/full $C/full
# restored answers must be taken as cached (a question whose scoring failed is not cached and is asked
# again, so not all of the first 3 need be; none is a key mismatch)
for run in "$C:clapnq" "$H:hotpotqa"; do
  IFS=: read -r home name <<<"$run"
  if ls "$home"/eval-cache/*.jsonl >/dev/null 2>&1 && [ ! -s "$home/full/summary.json" ]; then
    rag --home "$home" eval run "/tmp/suites/$name/suite.jsonl" -c "$name" --judge-method verifier \
      --multihop "$(mode_of "$name")" --limit 3 --json \
      | python -c "import json,sys; d=json.load(sys.stdin); print('$name, cached of the first 3:', d['cached']); sys.exit(d['cached'] == 0)"
  fi
done
( while sleep "$CHECKPOINT_S"; do checkpoint; done ) &
LOOP=$!
trap 'kill $LOOP 2>/dev/null || true; checkpoint' EXIT
# ClapNQ first (most of the issue's targets); the shipped verifier judges support, the LLM the rest
rag --home $C eval run /tmp/suites/clapnq/suite.jsonl -c clapnq --judge-method verifier --multihop "$(mode_of clapnq)" \
  --out $C/full/results.jsonl --report $C/full/report.md --run-file $C/full/run.trec --json > $C/full/summary.json
rag --home $H eval run /tmp/suites/hotpotqa/suite.jsonl -c hotpotqa --judge-method verifier --multihop "$(mode_of hotpotqa)" \
  --out $H/full/results.jsonl --report $H/full/report.md --run-file $H/full/run.trec --json > $H/full/summary.json
echo "both runs done: bash benchmarks/results/resume.sh finish" >&2
