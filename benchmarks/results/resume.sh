#!/usr/bin/env bash
# Resume the full eval runs on a fresh machine: frozen worktree at the runs' commit, same paths,
# cache parts restored, then the same commands (finished questions come from the cache).
#   bash benchmarks/results/resume.sh            # from the repository root; runs in the foreground
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
COMMIT=$(cat "$REPO/benchmarks/results/COMMIT")
SHARED=${SHARED:-$REPO/../shared}
WT=/tmp/frozen-$COMMIT
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
[ -f /tmp/suites/hotpotqa/suite.jsonl ] || rag eval import hotpotqa "$SHARED/data/hotpotqa-dev-500" --out /tmp/suites/hotpotqa
[ -f /tmp/suites/clapnq/suite.jsonl ] || rag eval import clapnq "$SHARED/data/clapnq-dev" --out /tmp/suites/clapnq
H=/tmp/rag-full/hotpotqa C=/tmp/rag-full/clapnq
rag --home $H ingest /tmp/suites/hotpotqa/docs -c hotpotqa
rag --home $C ingest /tmp/suites/clapnq/docs -c clapnq
for pair in "$H:hotpotqa-suite-b2dcdc9e8ff6:hotpotqa-500" "$C:clapnq-suite-ea5659c7e058:clapnq-600"; do
  IFS=: read -r home file dir <<<"$pair"
  if ls "$REPO/benchmarks/results/$dir"/cache-*.jsonl.gz >/dev/null 2>&1; then
    python "$REPO/benchmarks/eval_cache_parts.py" restore "$home/eval-cache/$file.jsonl" "$REPO/benchmarks/results/$dir"
  fi
done
mkdir -p $H/full $C/full
if [ -s $H/eval-cache/hotpotqa-suite-b2dcdc9e8ff6.jsonl ]; then  # restored answers must be taken as cached
  RAG_MULTIHOP_MODE=links rag --home $H eval run /tmp/suites/hotpotqa/suite.jsonl -c hotpotqa --limit 3 --json \
    | python -c "import json,sys; d=json.load(sys.stdin); print('cached of the first 3:', d['cached']); sys.exit(d['cached'] != 3)"
fi
RAG_MULTIHOP_MODE=links rag --home $H eval run /tmp/suites/hotpotqa/suite.jsonl -c hotpotqa \
  --out $H/full/results.jsonl --report $H/full/report.md --run-file $H/full/run.trec --json > $H/full/summary.json
rag --home $C eval run /tmp/suites/clapnq/suite.jsonl -c clapnq \
  --out $C/full/results.jsonl --report $C/full/report.md --run-file $C/full/run.trec --json > $C/full/summary.json
