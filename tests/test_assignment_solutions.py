"""The worked solutions in assignments/<ladder>/solutions/: every CPU one passes the grader, the
CPU SGEMM ladder gets faster step by step, and the CUDA ones compile (no GPU here: nvcc only).

The speed check runs every step of a ladder on one stated shape (SPEED) in this process, in
alternation, and compares the best of the repeats (the least disturbed by other processes on a
shared machine). It asserts only the steps whose idea wins by a margin several times the asserted factor at that
shape (SGEMM: loop order over the naive loops, 15x measured; the SIMD micro-kernel over loop order,
3x; conv2d: im2col + GEMM over the naive loops, 10x; quiet Zen 3, clang and gcc builds); the others
it prints (packing over cache blocking measured 1.16x and loop order over naive conv2d 2.9x on the
quiet machine, too close for a test; cache blocking pays off at shapes larger than a unit test can
afford; OpenMP needs idle cores): benchmarks/bench_ladder.py measures them all."""
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from convforge import _C, kernels
from convforge import grade as G

ASSIGNMENTS = Path(__file__).parent.parent / "assignments"
SOLUTIONS = sorted(ASSIGNMENTS.glob("*/solutions/*.c*"))
CPU = [p for p in SOLUTIONS if p.suffix == ".cpp"]
CUDA = [p for p in SOLUTIONS if p.suffix == ".cu"]
OP = {"cpu_sgemm": "gemm", "cuda_sgemm": "gemm", "cpu_conv2d": "conv2d", "cuda_conv2d": "conv2d"}
# The stated shapes, and the steps asserted there: (slower step, faster step, least speed-up of
# the best times). The others are reported (printed with the table).
SPEED = {
    "cpu_sgemm": ("gemm", {"M": 384, "N": 384, "K": 384, "alpha": 1.0, "beta": 0.0, "pad": [0, 0, 0]},
                  [("step1_naive", "step2_loop_order", 3.0), ("step2_loop_order", "step5_simd_microkernel", 1.5)]),
    "cpu_conv2d": ("conv2d", G.BENCH[("conv2d", "cpu")],  # the grader's timing shape
                   [("step1_naive", "step3_im2col_gemm", 3.0)]),
}

pytestmark = pytest.mark.usefixtures("kernel_cache")  # conftest.py: one build cache for student files


def test_the_ladders_have_their_worked_solutions():
    for ladder in ("cpu_sgemm", "cpu_conv2d"):  # every CPU step
        steps = {p.name for p in (ASSIGNMENTS / ladder).glob("step*.cpp")}
        assert steps and steps == {p.name for p in (ASSIGNMENTS / ladder / "solutions").glob("step*.cpp")}
    assert (ASSIGNMENTS / "cuda_conv2d" / "solutions" / "step3_constant_weights.cu").exists()
    for p in SOLUTIONS:  # each named on its ladder's page
        assert f"solutions/{p.name}" in (p.parent.parent / "README.md").read_text(), p


@pytest.mark.parametrize("path", CPU, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_cpu_solution_passes_the_grader(path):
    r = G.grade(path, OP[path.parent.parent.name], timing=False, n_random=2)
    assert r["status"] == "passed", G.format_report(r)


@pytest.mark.parametrize("ladder", sorted(SPEED))
def test_cpu_ladder_steps_get_faster(ladder, record_property, capsys):
    op, spec, asserted = SPEED[ladder]
    paths = sorted((ASSIGNMENTS / ladder / "solutions").glob("step*.cpp"))
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(kernels.compile_kernel, paths))
    rows = G.time_files(paths, op, spec, budget=2.0, min_reps=5, max_reps=20)
    best = {r["name"]: r["best_gflops"] for r in rows}
    table = ", ".join(f"{r['name']} {r['best_gflops']:.1f} (median {r['gflops']:.1f}, {r['threads']} thr)" for r in rows)
    record_property(f"{ladder}_gflops", table)
    with capsys.disabled():
        print(f"\n{ladder} solutions on {G.describe(op, spec)}, best of {rows[0]['reps']}, GFLOP/s: {table}")
    for slow, fast, factor in asserted:
        if fast == "step5_simd_microkernel" and _C.simd_level_supported() == "scalar":
            continue  # no AVX2: step 5 runs step 4's plain kernel
        assert best[fast] >= factor * best[slow], f"{fast} is not {factor}x faster than {slow}: {table}"


nvcc = shutil.which("nvcc")


@pytest.mark.skipif(nvcc is None, reason="nvcc not found")
def test_cuda_solutions_compile():
    assert len(CUDA) >= 9
    with ThreadPoolExecutor(2) as pool:  # nvcc is slow: two at a time
        built = list(pool.map(kernels.compile_kernel, CUDA))
    for path, (lib, log, _) in zip(CUDA, built):
        out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True).stdout
        fn = "convforge_gemm" if OP[path.parent.parent.name] == "gemm" else "convforge_conv2d_forward"
        assert fn in out, path
        assert "warning" not in log.lower(), (path, log)
