#!/usr/bin/env bash
# Builds the Python package with clang and LLVM's OpenMP runtime (libomp), the toolchain a macOS
# user gets, into build/clang, and runs the whole Python test suite against that build (the
# suite CI runs for the gcc build). The compiled extension is put first on PYTHONPATH, so the
# pip-installed convforge in the environment is not the one tested: the run checks that
# convforge._C comes from build/clang and that its OpenMP calls go to libomp.
#
#   bash tools/clang_build_tests.sh             # build (incremental) + the whole suite
#   bash tools/clang_build_tests.sh -x -k conv  # extra arguments go to pytest
#
# Needs clang++ and libomp (Debian: apt-get install -y clang libomp-dev; .ci/run installs them).
# Uses the python on PATH (CI: the activated .venv-ci with the test extra); installs
# pybind11/cmake/ninja into it only when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PYTHON:-python}
cxx=${CLANG_CXX:-clang++}
dir=build/clang
command -v "$cxx" >/dev/null || {
  echo "clang_build_tests: $cxx not found; install it: apt-get install -y clang libomp-dev" >&2
  exit 1
}
$PY -c "import pybind11" 2>/dev/null || $PY -m pip install --quiet pybind11
command -v cmake >/dev/null || $PY -m pip install --quiet cmake
command -v ninja >/dev/null || $PY -m pip install --quiet ninja

mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCONVFORGE_CUDA=OFF -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" >"$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; exit 1; }
grep "convforge:" "$dir.configure.log" || true
cmake --build "$dir" -j"${CLANG_JOBS:-2}"
echo "clang_build_tests: build took $(( $(date +%s) - start )) s"

export PYTHONPATH="$PWD/$dir:$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export CONVFORGE_CXX="$cxx"  # student kernels (convforge.load_kernel) are compiled by clang too
$PY -c "
import sys, convforge, convforge._C as c
info = convforge.build_info()
print('clang_build_tests:', info['compiler'], '| OpenMP', info['openmp'], info['openmp_runtime'], '| SIMD', info['simd_supported'])
if '/$dir/' not in c.__file__: sys.exit('clang_build_tests: convforge._C comes from ' + c.__file__)
if 'Clang' not in info['compiler']: sys.exit('clang_build_tests: built by ' + info['compiler'])
if 'libomp' not in info['openmp_runtime']: sys.exit('clang_build_tests: OpenMP runtime is ' + info['openmp_runtime'])"

t0=$(date +%s)
set +e
$PY -m pytest -q -ra -p no:cacheprovider "$@"
rc=$?
set -e
echo "clang_build_tests: tests took $(( $(date +%s) - t0 )) s, total $(( $(date +%s) - start )) s"
exit $rc
