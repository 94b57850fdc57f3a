#!/usr/bin/env bash
# Generates the Python stubs of every proto into one place: clients/python (or $1).
# The stubs are committed; `make check-protos` regenerates into a temp dir and fails on drift.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/clients/python}
py=${PYTHON:-$here/.venv/bin/python}
mkdir -p "$out"
cd "$here/protos"
mapfile -t files < <(find teu -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -I . \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  --plugin=protoc-gen-mypy="$here/.venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$here/.venv/bin/protoc-gen-mypy_grpc" \
  "${files[@]}"
