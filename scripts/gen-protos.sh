#!/usr/bin/env bash
# Generates the Python stubs of every proto into the contracts package, api/python/teu_api (or
# $1/teu_api). protoc names a stub's module after its proto's path (teu/gateway/v1 -> teu.gateway.v1);
# the stubs live in the package teu_api instead, so module references (never the proto package names
# inside descriptors or method paths such as /teu.gateway.v1.ContainersService/Run) are rewritten.
# The stubs are committed; `make check-protos` regenerates into a temp dir and fails on drift.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/api/python}/teu_api
py=${PYTHON:-$here/.venv/bin/python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$here/protos"
mapfile -t files < <(find teu k8s -name '*.proto' | sort)
"$py" -m grpc_tools.protoc -I . \
  --python_out="$tmp" --grpc_python_out="$tmp" \
  --mypy_out="$tmp" --mypy_grpc_out="$tmp" \
  --plugin=protoc-gen-mypy="$here/.venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$here/.venv/bin/protoc-gen-mypy_grpc" \
  "${files[@]}"
cd "$tmp"
for f in $(find teu k8s -type f | sort); do
  dest=$out/${f#teu/}
  mkdir -p "$(dirname "$dest")"
  sed -E -e 's/\bteu\.([a-z]+)\.v1\.([A-Za-z0-9_]+_pb2(_grpc)?)\b/teu_api.\1.v1.\2/g' \
         -e 's/^(from|import) teu\.([a-z]+)\.v1 import/\1 teu_api.\2.v1 import/' \
         -e 's/\bk8s\.cri\.v1\.(api_pb2(_grpc)?)\b/teu_api.k8s.cri.v1.\1/g' \
         -e 's/^(from|import) k8s\.cri\.v1 import/\1 teu_api.k8s.cri.v1 import/' "$f" > "$dest"
done
# Regular packages: every folder of stubs has an (empty) __init__.py.
for d in $(cd teu && find . -mindepth 1 -type d) k8s k8s/cri k8s/cri/v1; do : > "$out/$d/__init__.py"; done
