#!/usr/bin/env bash
# One entry point for a fresh machine: creates .venv, installs recstack and its dependencies
# (the CPU build of torch unless an NVIDIA GPU is present; Ray, for the fleet and its tests),
# then runs the main job or the tests.
#
#   bash scripts/dev.sh run  [recstack run options]   # set up, then the default characterization
#   bash scripts/dev.sh test [pytest options]         # set up, then the whole test suite
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"

action="${1:-}"
case "$action" in
  run|test|setup) shift ;;
  *) echo "usage: bash scripts/dev.sh {run|test|setup} [options]" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: recstack needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 2
fi

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi

# Reinstall only when what decides the installation changed.
stamp="$venv/.recstack-installed"
want="$(cat pyproject.toml constraints/cpu.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    # A GPU machine keeps (or gets) a CUDA build of torch: no CPU pin.
    "$venv/bin/python" -m pip install --quiet -e ".[test,ray]"
  else
    # Install the pinned CPU torch first and keep it pinned, so that no dependency's
    # torch range can pull the CUDA build.
    "$venv/bin/python" -m pip install --quiet -c constraints/cpu.txt "torch==2.13.0"
    "$venv/bin/python" -m pip install --quiet -c constraints/cpu.txt -e ".[test,ray]"
  fi
  echo "$want" > "$stamp"
fi

# numpy's OpenBLAS threads spin during torch loops and steal cores from inference.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

# The report's browser test drives Debian's chromium (headless); install it once, quietly,
# where it is missing and apt-get exists. Elsewhere that test skips and says why.
if [ "$action" = test ] && [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium (for the report's browser test)..." >&2
  if ! { DEBIAN_FRONTEND=noninteractive apt-get -qq update \
         && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends \
              chromium; } >/dev/null 2>&1; then
    echo "warning: could not install chromium; the browser test will be skipped" >&2
  fi
fi

case "$action" in
  setup) echo "recstack is set up in $venv" ;;
  run)   exec "$venv/bin/recstack" run "$@" ;;
  test)  exec "$venv/bin/python" -m pytest "$@" ;;
esac
