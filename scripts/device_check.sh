#!/usr/bin/env bash
# The CUDA paths of recstack in one command, for a machine with an NVIDIA GPU (about 8
# minutes): the CUDA tests, a reduced main job on cuda and cpu (a few models and batch sizes),
# and a short serving run whose large requests are offloaded to a GPU engine. Writes
# docs/results/<gpu-name>.md with what each step printed and how long it took.
#
#   bash scripts/device_check.sh [OUTPUT_FOLDER]      # default: docs/results
#
# Where no GPU is present every CUDA step is skipped, saying so, and nothing is written.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
out_folder="${1:-docs/results}"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "device_check: skipped: no NVIDIA GPU here (nvidia-smi finds none), so the CUDA" \
       "tests, the cuda main job and the GPU-offload serving run cannot run"
  exit 0
fi

gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1)"
slug="$(printf '%s' "$gpu" | tr -cs 'A-Za-z0-9' '-' | sed 's/^-//; s/-$//' | tr 'A-Z' 'a-z')"
report="$out_folder/${slug:-gpu}.md"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out_folder"

bash scripts/dev.sh setup >"$work/setup.log" 2>&1 || {
  echo "device_check: set-up failed; see below" >&2; tail -n 20 "$work/setup.log" >&2; exit 1; }
python=".venv/bin/python"
recstack=".venv/bin/recstack"
export OPENBLAS_NUM_THREADS=1

status=0
{
  echo "# recstack on $gpu"
  echo
  echo "Written by \`scripts/device_check.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), recstack" \
       "commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo '```'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
  echo '```'
} >"$report"

step() {  # step TITLE SECONDS COMMAND...: runs it with a limit, appends its output
  local title="$1" limit="$2"; shift 2
  local start end code
  start=$(date +%s)
  timeout "$limit" "$@" >"$work/step.log" 2>&1
  code=$?
  end=$(date +%s)
  [ "$code" -ne 0 ] && status=1
  {
    echo
    echo "## $title"
    echo
    echo "\`$*\`: exit status $code after $((end - start)) s (limit $limit s)."
    echo
    echo '```'
    tail -n 80 "$work/step.log"
    echo '```'
  } >>"$report"
  echo "device_check: $title: exit status $code after $((end - start)) s"
}

step "CUDA tests" 150 "$python" -m pytest -q -k cuda tests/
step "Main job on cuda and cpu (reduced)" 200 "$recstack" run -m rmc1 -m rmc3 -m dien \
  --batch-sizes 1,64,1024 --device cpu --device cuda --levels timing,operators \
  --min-time 0.3 --budget 4 --store "$work/main.duckdb"
step "Serving with GPU offload" 90 "$recstack" serve -m rmc1 --offload-threshold 128 \
  --qps 50,200 --min-duration 2 --library-requests 64 --store "$work/serve.duckdb"

echo "device_check: wrote $report"
exit "$status"
