#!/usr/bin/env bash
# Builds the C++ core with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# CONVFORGE_SANITIZE=ON) in its own build directory, build/sanitize, and runs a substantial
# subset of the CPU test suite against that build. Any sanitizer report fails the script.
#
#   bash tools/sanitize_tests.sh            # build (incremental) + the subset below
#   bash tools/sanitize_tests.sh -x -k conv # extra arguments go to pytest
#
# Uses the python on PATH (CI: the activated .venv-ci, which has the test extra); installs
# pybind11/cmake/ninja into it only when they are missing. The compiled extension is put
# first on PYTHONPATH, so the pip-installed convforge in that environment is not the one
# tested: the test run checks that convforge._C comes from build/sanitize.
#
# The subset (CPU only; about 2-3 minutes on 2 cores after a ~2 minute build):
#   test_conv2d test_pool test_adaptive_pool test_batch_norm test_gemm test_activations
#   test_api_errors test_lecture_examples
#   test_threads test_numerics test_memory_limits test_properties (hypothesis "ci" profile)
#   test_denormals
#   test_concurrency's mixed-op stress test.
# Left out: test_leaks and the GIL timing test (ASan's quarantine and slowdown make RSS and
# wall-clock measurements meaningless), test_viz/test_transfer (no new C++ paths), CUDA tests.
#
# ASan: LD_PRELOAD of the compiler's libasan and libstdc++ (python itself is not instrumented) and
# detect_leaks=0 (the interpreter leaks by ASan's measure at exit). UBSan: compiled with
# -fno-sanitize-recover=undefined, so the first report aborts the test run.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
PY=${PYTHON:-python}
dir=build/sanitize
logdir=$dir/reports
mkdir -p "$dir"

$PY -c "import pybind11" 2>/dev/null || $PY -m pip install --quiet pybind11
command -v cmake >/dev/null || $PY -m pip install --quiet cmake
command -v ninja >/dev/null || $PY -m pip install --quiet ninja

cxx=${CXX:-c++}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DCONVFORGE_SANITIZE=ON -DCONVFORGE_CUDA=OFF -DPython_EXECUTABLE="$(command -v "$PY")" \
  -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" >"$dir.configure.log" 2>&1 \
  || { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j"${SANITIZE_JOBS:-2}"
echo "sanitize: build took $(( $(date +%s) - start )) s"

libasan=$("$cxx" -print-file-name=libasan.so)
[[ -f $libasan ]] || { echo "sanitize: libasan.so not found for $cxx" >&2; exit 1; }
# libstdc++ preloaded too: otherwise ASan's __cxa_throw interceptor finds no real __cxa_throw
# (python does not link libstdc++) and the first C++ exception aborts with "CHECK failed".
libstdcxx=$("$cxx" -print-file-name=libstdc++.so.6)
preload="$libasan${libstdcxx:+ $libstdcxx}"
rm -rf "$logdir" && mkdir -p "$logdir"

tests=(tests/test_conv2d.py tests/test_pool.py tests/test_adaptive_pool.py tests/test_batch_norm.py
       tests/test_gemm.py tests/test_activations.py
       tests/test_api_errors.py tests/test_lecture_examples.py tests/test_threads.py
       tests/test_numerics.py tests/test_memory_limits.py tests/test_properties.py tests/test_denormals.py
       "tests/test_concurrency.py::test_mixed_ops_from_many_threads")

export PYTHONPATH="$PWD/$dir:$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
LD_PRELOAD="$preload" ASAN_OPTIONS=detect_leaks=0 $PY -c "
import convforge._C as c, sys
sys.exit(0 if '/$dir/' in c.__file__ else 'sanitize: convforge._C comes from ' + c.__file__)"

t0=$(date +%s)
set +e
LD_PRELOAD="$preload" \
ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:log_path=$PWD/$logdir/asan" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=87:log_path=$PWD/$logdir/ubsan" \
HYPOTHESIS_PROFILE=${HYPOTHESIS_PROFILE:-ci} \
  $PY -m pytest -q -p no:cacheprovider "${tests[@]}" "$@"
rc=$?
set -e
echo "sanitize: tests took $(( $(date +%s) - t0 )) s, total $(( $(date +%s) - start )) s"

if compgen -G "$logdir/*" >/dev/null; then
  echo "sanitize: sanitizer reports:" >&2
  for f in "$logdir"/*; do echo "== $f" >&2; cat "$f" >&2; done
  exit 1
fi
[[ $rc -eq 0 ]] || { echo "sanitize: pytest failed (exit $rc)" >&2; exit "$rc"; }
echo "sanitize: no sanitizer reports"
