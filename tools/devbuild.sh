#!/usr/bin/env bash
# Incremental developer build without pip: tools/devbuild.sh NAME [cmake args...]
# builds into build/dev-NAME; then run with  PYTHONPATH=python:build/dev-NAME
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-default}; shift || true
dir=build/dev-$name
mkdir -p build
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j2
echo "PYTHONPATH=python:$dir"
