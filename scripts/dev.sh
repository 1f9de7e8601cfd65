#!/usr/bin/env bash
# One entry point that sets everything up on a fresh machine, then runs:
#   bash scripts/dev.sh cases   the example suite in cases/ against a managed ComfyUI
#   bash scripts/dev.sh test    the project's own tests (ruff, mypy, pytest)
# Extra arguments go to pytest. Set COMFYTEST_HOME to choose where the runtime is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

what="${1:-}"
shift || true
case "$what" in
  cases|test) ;;
  *) echo "usage: bash scripts/dev.sh cases|test [pytest args...]" >&2; exit 2 ;;
esac

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
.venv/bin/comfytest runtime install

pytest_or_fail() {
  # pytest exits 5 when it ran no test: that is a failure here, never a pass.
  set +e
  .venv/bin/python -m pytest "$@"
  local rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "dev.sh: pytest collected no tests; treating that as a failure" >&2
    return 1
  fi
  return "$rc"
}

if [ "$what" = cases ]; then
  report="${COMFYTEST_ARTIFACTS:-.comfytest}/report.html"
  pytest_or_fail cases --comfy-launch "--comfy-report=$report" "$@"
else
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy comfytest
  pytest_or_fail tests "$@"
fi
