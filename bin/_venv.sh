# Sourced by bin/*: find a Python >= 3.12, create or reuse .venv, install the pinned deps when
# pyproject.toml changed. Prints what to install when no suitable Python exists.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LERPNET_VENV:-$ROOT/.venv}"

find_python() {
  local c
  for c in "${LERPNET_PYTHON:-}" python3.12 python3 python3.13; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$c"; return 0
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for c in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])(\.[0-9]+)?$' | sort -V); do
      if [ -x "$(pyenv root)/versions/$c/bin/python3" ]; then echo "$(pyenv root)/versions/$c/bin/python3"; return 0; fi
    done
  fi
  return 1
}

if [ ! -x "$VENV/bin/python" ]; then
  if ! PY="$(find_python)"; then
    echo "lerpnet needs Python >= 3.12 and none was found (looked for python3.13, python3.12, python3, pyenv versions)." >&2
    echo "Install one, e.g. 'apt-get install python3.12 python3.12-venv' or 'pyenv install 3.12', or set LERPNET_PYTHON=/path/to/python3.12." >&2
    exit 1
  fi
  echo "[lerpnet] creating $VENV with $PY" >&2
  "$PY" -m venv "$VENV"
fi

STAMP="$VENV/.lerpnet-installed"
WANT="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "[lerpnet] installing pinned dependencies into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e "$ROOT[dev]" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" >&2 || true
  "$VENV/bin/python" -c "import jax, flax, ml_collections, trimesh" || { echo "[lerpnet] dependency install failed" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
