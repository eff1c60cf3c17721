#!/usr/bin/env bash
# The whole GPU check in one run, offline: build and install, the CUDA tests, compute-sanitizer
# (memcheck and racecheck) on each kernel family, the benchmark; the table is printed last.
#
#   benchmarks/device_check.sh            (from anywhere; it works in the repository root)
#
# Every step has a time limit and the script goes on past failures. Logs (at most 8 files) go to
# $OUT when it is set, else build/device-check/. Environment: CF_TOTAL_S (default 510) bounds the
# whole run; CF_BENCH_S (default 150) is kept for the benchmark; CF_SKIP_BUILD=1 reuses an install.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOG=${OUT:-$ROOT/build/device-check}
mkdir -p "$LOG"
TOTAL=${CF_TOTAL_S:-510}
BENCH_RESERVE=${CF_BENCH_S:-150}
START=$(date +%s)
SUMMARY="$LOG/summary.txt"
: >"$SUMMARY"
PY=${PYTHON:-python3}
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONUNBUFFERED=1 CUDA_MODULE_LOADING=LAZY

elapsed() { echo $(( $(date +%s) - START )); }
# seconds a step may take: its own cap, but never eating into the benchmark's reserve
limit() {
  local cap=$1 left=$(( TOTAL - BENCH_RESERVE - $(elapsed) ))
  (( left < 20 )) && left=20
  (( cap < left )) && echo "$cap" || echo "$left"
}

# step NAME LOGFILE CAP_SECONDS COMMAND...   (appends to LOGFILE, records the outcome)
step() {
  local name=$1 logf=$2 cap=$3; shift 3
  local t; t=$(limit "$cap")
  local t0; t0=$(date +%s)
  echo "=== [$name] (limit ${t}s, at $(elapsed)s) $*" | tee -a "$logf"
  timeout --kill-after=10 "$t" "$@" >>"$logf" 2>&1
  local rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local what="ok"
  (( rc == 124 || rc == 137 )) && what="TIMEOUT"
  (( rc != 0 && rc != 124 && rc != 137 )) && what="FAILED (rc=$rc)"
  printf '%-28s %-16s %4ss  log %s\n' "$name" "$what" "$dt" "$(basename "$logf")" | tee -a "$SUMMARY"
  tail -n 5 "$logf" | sed 's/^/    /'
  return 0
}

BUILD_LOG="$LOG/01_build.log"; INFO_LOG="$LOG/02_info.log"; TEST_LOG="$LOG/03_tests.log"
SAN_LOG="$LOG/04_sanitize.log"; BENCH_LOG="$LOG/05_bench.log"
: >"$BUILD_LOG"; : >"$INFO_LOG"; : >"$TEST_LOG"; : >"$SAN_LOG"; : >"$BENCH_LOG"

# ---- build ------------------------------------------------------------------------------------
if [[ "${CF_SKIP_BUILD:-0}" != 1 ]]; then
  step "pip install (sm_90)" "$BUILD_LOG" 300 \
    "$PY" -m pip install --no-build-isolation --no-deps -v \
      -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90 -Cbuild-dir=build/device-check-build .
  if ! (cd /tmp && "$PY" -c "import convforge._cuda") >>"$BUILD_LOG" 2>&1; then
    echo "pip install did not give an importable convforge._cuda; trying a plain cmake build" | tee -a "$BUILD_LOG"
    step "cmake build (fallback)" "$BUILD_LOG" 300 bash -c \
      "cmake -S . -B build/device-dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
         -Dpybind11_DIR=\$($PY -m pybind11 --cmakedir) -DPython_EXECUTABLE=\$(command -v $PY) && cmake --build build/device-dev -j\$(nproc)"
    export PYTHONPATH="$ROOT/python:$ROOT/build/device-dev${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi

# ---- the machine and the build ----------------------------------------------------------------
step "nvidia-smi" "$INFO_LOG" 30 nvidia-smi
step "build info" "$INFO_LOG" 60 "$PY" -c "
import json, convforge, convforge.cuda as cc
print(json.dumps(convforge.build_info(), indent=1, default=str))
print(json.dumps(cc.build_info(), indent=1))
print(json.dumps(cc.get_device_properties(0), indent=1) if cc.is_available() else 'no GPU visible')
import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())
"

# ---- tests ------------------------------------------------------------------------------------
step "pytest tests/test_cuda.py" "$TEST_LOG" 200 \
  "$PY" -m pytest -q -p no:cacheprovider --durations=8 -rfE tests/test_cuda.py

# ---- compute-sanitizer ------------------------------------------------------------------------
if command -v compute-sanitizer >/dev/null 2>&1; then
  SAN=compute-sanitizer
elif [[ -x /usr/local/cuda/bin/compute-sanitizer ]]; then
  SAN=/usr/local/cuda/bin/compute-sanitizer
else
  SAN=""
fi
if [[ -n "$SAN" ]]; then
  step "memcheck" "$SAN_LOG" 120 "$SAN" --tool memcheck --error-exitcode 99 --print-limit 20 \
    "$PY" benchmarks/sanitize_cuda.py
  step "racecheck" "$SAN_LOG" 150 "$SAN" --tool racecheck --error-exitcode 99 --print-limit 20 \
    "$PY" benchmarks/sanitize_cuda.py
else
  echo "compute-sanitizer not found" | tee -a "$SAN_LOG" "$SUMMARY"
fi

# ---- CPU tests, only when time is left over before the benchmark's reserve ----------------------
left=$(( TOTAL - BENCH_RESERVE - $(elapsed) ))
if (( left > 45 )); then
  step "pytest CPU (rest of tests)" "$TEST_LOG" $(( left - 15 < 90 ? left - 15 : 90 )) \
    "$PY" -m pytest -q -p no:cacheprovider -x -rfE tests --ignore=tests/test_cuda.py
else
  echo "CPU tests skipped: ${left}s left before the benchmark's reserve" | tee -a "$SUMMARY"
fi

# ---- benchmark (the table comes last) -----------------------------------------------------------
bench_left=$(( TOTAL - $(elapsed) - 20 ))
(( bench_left < 60 )) && bench_left=60
BENCH_S=$(( bench_left - 25 ))
BENCH_RESERVE=0
step "benchmark" "$BENCH_LOG" "$bench_left" "$PY" benchmarks/bench_cuda.py \
  --budget "$BENCH_S" --json "$LOG/bench.json" --plot "$LOG/bench.png"

echo
echo "=== summary (total $(elapsed)s; logs in $LOG)"
cat "$SUMMARY"
grep -E "passed|failed|error" "$TEST_LOG" | tail -n 4
grep -E "failures|ERROR SUMMARY|RACECHECK SUMMARY" "$SAN_LOG" | tail -n 6
echo
if [[ -f "$LOG/bench.json" ]]; then
  "$PY" benchmarks/bench_cuda.py --from-json "$LOG/bench.json" --compact
  echo "(full table: $(basename "$BENCH_LOG"), bench.json)"
else
  sed -n '/^== convforge CUDA/,$p' "$BENCH_LOG"
fi
