#!/usr/bin/env bash
# Builds both builds of the textscore workload into a Python environment, idempotently:
#   workloads/build.sh <path-to-venv-python>
# - the Python build: `pip install -e workloads/textscore` (once);
# - the Rust build: the textscore-native wheel (maturin, release profile), cached under
#   ~/.cache/ferrocanary/wheels by a hash of everything that goes into it, installed when the
#   venv's stamp differs. Nothing changed: a hash and two stat calls, well under a second.
# Each build says whether it was cached or built, and how long a build took: a cold maturin
# release build is minutes of compiler output hidden by --quiet, and should not look hung.
set -euo pipefail

say() { echo "workloads/build.sh: $*"; }

PY=${1:?usage: workloads/build.sh <path-to-venv-python>}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
CACHE=${FERROCANARY_CACHE:-$HOME/.cache/ferrocanary}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/cargo-target}
mkdir -p "$CACHE/wheels"

# Two callers at once (make setup, a test, the bench) must not build or install over each other.
exec 9>"$CACHE/wheels/.build.lock"
flock 9

PREFIX=$("$PY" -c 'import sys; print(sys.prefix)')

# The Python build.
if ! "$PY" -c 'import sys, textscore; sys.exit(not textscore.__file__.startswith(sys.argv[1]))' \
    "$HERE/textscore/" 2>/dev/null; then
  say "python build: installing (pip install -e workloads/textscore)"
  started=$SECONDS
  "$PY" -m pip install --quiet -e "$HERE/textscore"
  say "python build: installed in $((SECONDS - started))s"
else
  say "python build: cached (textscore is installed from workloads/textscore)"
fi

# The Rust build: hash the sources, the lock file, the shared table and the toolchain.
HASH=$(
  cd "$ROOT"
  {
    rustc --version
    "$PY" -c 'import sys; print(sys.version_info[:2])'
    find Cargo.toml Cargo.lock workloads/textscore-core workloads/textscore-native \
      workloads/textscore/textscore/data/normtable.txt \
      -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.lock' -o -name '*.py' -o -name '*.pyi' \
      -o -name '*.txt' -o -name py.typed \) 2>/dev/null | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
)
STAMP="$PREFIX/.textscore-native-$HASH"
if [[ -f "$STAMP" ]] && "$PY" -c 'import textscore_native' 2>/dev/null; then
  say "rust build: cached (textscore-native $HASH is installed; sources unchanged)"
  exit 0
fi

WHEELS="$CACHE/wheels/textscore-native-$HASH"
if ls "$WHEELS"/textscore_native-*.whl >/dev/null 2>&1; then
  say "rust build: cached wheel in $WHEELS (built before for these sources)"
else
  say "rust build: building (maturin, release; a few minutes the first time) into $WHEELS"
  started=$SECONDS
  MATURIN=$(dirname "$PY")/maturin
  [[ -x "$MATURIN" ]] || MATURIN=maturin
  rm -rf "$WHEELS.tmp"
  "$MATURIN" build --release --quiet -m "$HERE/textscore-native/Cargo.toml" -i "$PY" -o "$WHEELS.tmp"
  rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
  say "rust build: built in $((SECONDS - started))s"
fi
say "rust build: installing $(basename "$WHEELS"/textscore_native-*.whl)"
"$PY" -m pip install --quiet --no-deps --force-reinstall "$WHEELS"/textscore_native-*.whl
rm -f "$PREFIX"/.textscore-native-*
touch "$STAMP"
