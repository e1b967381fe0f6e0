# Sourced by scripts/*: make sure .venv exists with Cronium (and, with DEV=1, the test tools).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.cronium-installed${DEV:+-dev}"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  if [ -n "${DEV:-}" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]"
  else
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT"
  fi
  touch "$stamp"
fi
