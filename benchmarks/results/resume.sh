#!/usr/bin/env bash
# Resume the full eval runs on a fresh machine: frozen worktree at the runs' commit, same paths,
# cache parts restored, then the same commands (finished questions come from the cache).
#   bash benchmarks/results/resume.sh            # from the repository root; runs in the foreground
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
COMMIT=9a4ab59
SHARED=${SHARED:-$REPO/../shared}
if [ ! -d /tmp/frozen ]; then git -C "$REPO" worktree add -f --detach /tmp/frozen "$COMMIT"; fi
cd /tmp/frozen
test "$(git rev-parse --short=7 HEAD)" = "$COMMIT" || { echo "/tmp/frozen is not at $COMMIT" >&2; exit 1; }
# llama.cpp built with Intel AMX crashes (SIGSEGV) in VMs that do not enable it: build without (README: Troubleshooting)
AMX_OFF="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
if echo | cc $AMX_OFF -E - >/dev/null 2>&1; then
  export CMAKE_ARGS="${CMAKE_ARGS:--DCMAKE_C_FLAGS='$AMX_OFF' -DCMAKE_CXX_FLAGS='$AMX_OFF'}"
fi
if [ ! -x .venv/bin/rag ]; then make install && .venv/bin/pip install -q -e '.[local-llm,eval]'; fi
source .venv/bin/activate
export HF_HUB_OFFLINE=1
[ -f /tmp/suites/hotpotqa/suite.jsonl ] || rag eval import hotpotqa "$SHARED/data/hotpotqa-dev-500" --out /tmp/suites/hotpotqa
[ -f /tmp/suites/clapnq/suite.jsonl ] || rag eval import clapnq "$SHARED/data/clapnq-dev" --out /tmp/suites/clapnq
rag --home /tmp/hpq ingest /tmp/suites/hotpotqa/docs -c hotpotqa
rag --home /tmp/cq ingest /tmp/suites/clapnq/docs -c clapnq
python "$REPO/benchmarks/eval_cache_parts.py" restore /tmp/hpq/eval-cache/hotpotqa-suite-b2dcdc9e8ff6.jsonl "$REPO/benchmarks/results/hotpotqa-500"
if ls "$REPO"/benchmarks/results/clapnq-600/cache-*.jsonl.gz >/dev/null 2>&1; then
  python "$REPO/benchmarks/eval_cache_parts.py" restore /tmp/cq/eval-cache/clapnq-suite-ea5659c7e058.jsonl "$REPO/benchmarks/results/clapnq-600"
fi
mkdir -p /tmp/hpq/full /tmp/cq/full
# a check that the restored answers are taken as cached (the key covers code-independent inputs only)
RAG_MULTIHOP_MODE=links rag --home /tmp/hpq eval run /tmp/suites/hotpotqa/suite.jsonl -c hotpotqa --limit 3 --json \
  | python -c "import json,sys; d=json.load(sys.stdin); print('cached of the first 3:', d['cached']); sys.exit(d['cached'] != 3)"
RAG_MULTIHOP_MODE=links rag --home /tmp/hpq eval run /tmp/suites/hotpotqa/suite.jsonl -c hotpotqa \
  --out /tmp/hpq/full/results.jsonl --report /tmp/hpq/full/report.md --run-file /tmp/hpq/full/run.trec --json > /tmp/hpq/full/summary.json
rag --home /tmp/cq eval run /tmp/suites/clapnq/suite.jsonl -c clapnq \
  --out /tmp/cq/full/results.jsonl --report /tmp/cq/full/report.md --run-file /tmp/cq/full/run.trec --json > /tmp/cq/full/summary.json
