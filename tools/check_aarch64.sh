#!/usr/bin/env bash
# Cross-compiles the C++ core for AArch64 (no Python bindings: CONVFORGE_PYTHON=OFF) with
# tests/native/simd_check.cpp, and runs it under user-mode emulation: every NEON kernel (GEMM
# micro-kernel, direct conv, pooling rows, activations) and the portable ones against the
# reference loops over the edge-case grid. Checks the AArch64 build on an x86-64 machine.
#
#   bash tools/check_aarch64.sh          # build (incremental) into build/aarch64, then run
#
# Needs Debian's g++-aarch64-linux-gnu and qemu-user (apt-get install -y g++-aarch64-linux-gnu
# qemu-user; .ci/run installs them), cmake and ninja (installed into the python on PATH when
# missing). Also writes the NEON GEMM micro-kernel's assembly to build/aarch64/gemm_microkernel_neon.s
# and prints the instruction mix of its k loop.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
cxx=${AARCH64_CXX:-aarch64-linux-gnu-g++}
qemu=${QEMU_AARCH64:-qemu-aarch64}
sysroot=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu}
for tool in "$cxx" "$qemu"; do
  command -v "$tool" >/dev/null || {
    echo "check_aarch64: $tool not found; install it: apt-get install -y g++-aarch64-linux-gnu qemu-user" >&2
    exit 1
  }
done
PY=${PYTHON:-python3}
command -v cmake >/dev/null || $PY -m pip install --quiet cmake
command -v ninja >/dev/null || $PY -m pip install --quiet ninja

dir=build/aarch64
mkdir -p "$dir"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 -DCMAKE_CXX_COMPILER="$cxx" \
  -DCONVFORGE_PYTHON=OFF -DCONVFORGE_CUDA=OFF -DCONVFORGE_NATIVE_TESTS=ON \
  >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
grep "convforge:" "$dir.configure.log" || true
cmake --build "$dir" -j"${CHECK_JOBS:-2}" --target simd_check
echo "check_aarch64: build took $(( $(date +%s) - start )) s"

# The micro-kernel's assembly, with the flags the build used.
"$cxx" -std=c++17 -O3 -DNDEBUG -fno-math-errno -Icsrc -S csrc/cpu/gemm/gemm_microkernel_neon.cpp \
  -o "$dir/gemm_microkernel_neon.s"
# The k loop: the block that ends in the backward branch taken most often, i.e. the one with the
# fmla instructions. Count its instructions by kind.
awk '/^\.L[0-9]+:/ {block=""; n=0} /^\t[a-z]/ {block=block"\n"$1; n++}
     /^\tb\.?(ne|gt|lt|cc|cs|hi|ls|ge|le)\t/ { c=gsub(/\nfmla/, "&", block); if (c > best) {best=c; kept=block} }
     END { m=split(kept, ins, "\n"); for (i=1;i<=m;i++) if (ins[i]!="") count[ins[i]]++;
           total=0; for (k in count) total+=count[k];
           printf "check_aarch64: NEON 8x12 micro-kernel k loop: %d instructions, %d fmla (4 lanes each):", total, count["fmla"];
           for (k in count) printf " %s %d", k, count[k]; printf "\n";
           printf "check_aarch64: %.3f instructions per 4-wide fmla, %.3f per scalar multiply-add\n",
                  total / count["fmla"], total / (4 * count["fmla"]) }' \
  "$dir/gemm_microkernel_neon.s"

t0=$(date +%s)
QEMU_LD_PREFIX="$sysroot" OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "$qemu" "$dir/simd_check"
echo "check_aarch64: emulated run took $(( $(date +%s) - t0 )) s, total $(( $(date +%s) - start )) s"
