"""The grader grades what convforge/student.h promises: for every parameter it documents, a copy of a
correct student file broken to ignore that parameter (one textual change, as a student would make
it) must fail the grader's fixed grid, and the correct file must pass it.

M, N, K (gemm) and N, C, K, R, S, P, Q (conv2d, pooling) bound every loop: a kernel cannot ignore
them and write its output, so they get no mutant of their own. pad_bottom / pad_right only fix P
and Q, which the geometry already holds (student.h says so)."""
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from convforge import grade as G

STUDENT = Path(__file__).parent / "student_kernels"

# (op, file, parameter): [(old text, new text), ...]; every occurrence of old is replaced
MUTANTS = {
    ("gemm", "good_gemm.cpp", "lda"): [("A[i * lda + k]", "A[i * K + k]")],
    ("gemm", "good_gemm.cpp", "ldb"): [("B[k * ldb + j]", "B[k * N + j]")],
    ("gemm", "good_gemm.cpp", "ldc"): [("C + i * ldc", "C + i * N")],
    ("gemm", "good_gemm.cpp", "ldc_row_end"): [("j < N; ++j) c[j] = beta", "j < ldc; ++j) c[j] = beta")],
    ("gemm", "good_gemm.cpp", "alpha"): [("alpha * A[", "A[")],
    ("gemm", "good_gemm.cpp", "beta"): [("beta * c[j]", "c[j]")],
    ("gemm", "good_gemm.cpp", "beta_zero_reads_C"): [("beta == 0.f ? 0.f : beta * c[j]", "beta * c[j]")],
    ("conv2d", "good_conv.cpp", "stride_h"): [("p * g->stride_h", "p * g->stride_w")],
    ("conv2d", "good_conv.cpp", "stride_w"): [("q * g->stride_w", "q * g->stride_h")],
    ("conv2d", "good_conv.cpp", "pad_top"): [("- g->pad_top", "- g->pad_left")],
    ("conv2d", "good_conv.cpp", "pad_left"): [("- g->pad_left", "- g->pad_top")],
    ("conv2d", "good_conv.cpp", "dilation_h"): [("r * g->dilation_h", "r * g->dilation_w")],
    ("conv2d", "good_conv.cpp", "dilation_w"): [("s * g->dilation_w", "s * g->dilation_h")],
    ("conv2d", "good_conv.cpp", "groups"): [("(k / Kg) * Cg", "0 * Cg")],
    ("conv2d", "good_conv.cpp", "bias"): [("bias ? bias[k] : 0.f", "0.f")],
    ("conv2d", "good_conv.cpp", "H"): [("*h >= 0 && *h < g->H &&", "*h >= 0 &&")],
    ("conv2d", "good_conv.cpp", "W"): [("*w >= 0 && *w < g->W", "*w >= 0")],
    ("conv2d", "good_conv.cpp", "db_may_be_null"): [("if (db) {", "{")],
    ("conv2d", "good_conv.cpp", "dx_write_only"): [("std::memset(dx, 0, sizeof(float) * g->x_size());", "")],
    ("max_pool2d", "good_pool.cpp", "stride_h"): [("p * g->stride_h", "p * g->stride_w")],
    ("max_pool2d", "good_pool.cpp", "stride_w"): [("q * g->stride_w", "q * g->stride_h")],
    ("max_pool2d", "good_pool.cpp", "pad_h"): [("p * g->stride_h - g->pad_h", "p * g->stride_h - g->pad_w")],
    ("max_pool2d", "good_pool.cpp", "pad_w"): [("q * g->stride_w - g->pad_w", "q * g->stride_w - g->pad_h")],
    ("max_pool2d", "good_pool.cpp", "dilation_h"): [("r * g->dilation_h", "r * g->dilation_w")],
    ("max_pool2d", "good_pool.cpp", "dilation_w"): [("s * g->dilation_w", "s * g->dilation_h")],
    ("max_pool2d", "good_pool.cpp", "nan_wins"): [(" || std::isnan(v)", "")],
    ("max_pool2d", "good_pool.cpp", "first_tie_wins"): [("v > best", "v >= best")],
    ("max_pool2d", "good_pool.cpp", "indices_may_be_null"): [("if (indices) indices[o]", "indices[o]")],
    ("max_pool2d", "good_pool.cpp", "backward_sums_overlaps"): [("+ o]] += dy", "+ o]] = dy")],
    ("max_pool2d", "good_pool.cpp", "backward_dx_write_only"): [
        ("std::memset(dxp, 0, sizeof(float) * g->H * g->W);", "")],
    ("avg_pool2d", "good_pool.cpp", "stride_h"): [("p * g->stride_h", "p * g->stride_w")],
    ("avg_pool2d", "good_pool.cpp", "stride_w"): [("q * g->stride_w", "q * g->stride_h")],
    ("avg_pool2d", "good_pool.cpp", "pad_h"): [("p * g->stride_h - g->pad_h", "p * g->stride_h - g->pad_w")],
    ("avg_pool2d", "good_pool.cpp", "pad_w"): [("q * g->stride_w - g->pad_w", "q * g->stride_w - g->pad_h")],
    ("avg_pool2d", "good_pool.cpp", "count_include_pad"): [("count_include_pad ? padded", "1 ? padded")],
    ("avg_pool2d", "good_pool.cpp", "ceil_mode_window_past_padding"): [
        ("std::min(hs + g->R, g->H + g->pad_h)", "hs + g->R")],
    ("avg_pool2d", "good_pool.cpp", "backward_divisor"): [("] / divisor(", "] / 1.f / (float)g->R / g->S + 0 * divisor(")],
}


pytestmark = pytest.mark.usefixtures("kernel_cache")  # conftest.py: one build cache for student files


def quick_grid(op):
    """The fixed grid without the network-layer shapes (LeNet, VGG, AlexNet), which exercise no
    parameter the other cases do not and cost most of the time."""
    return [n for n, _ in G.cases(op, n_random=0) if not n.startswith(("lenet", "vgg", "alexnet"))]


def _grade(path, op):
    return G.grade(path, op, timing=False, n_random=0, case_names=quick_grid(op))


@pytest.fixture(scope="module")
def graded(tmp_path_factory, kernel_cache):
    """Writes every broken copy, then compiles (-O0: these run tiny shapes) and grades them two at a
    time, the correct files too: {key: result}."""
    d = tmp_path_factory.mktemp("mutants")
    jobs = {}
    for (op, name, param), edits in MUTANTS.items():
        src = (STUDENT / name).read_text()
        for old, new in edits:
            assert old in src, f"{name}: the text to break {param} is gone: {old!r}"  # else the test proves nothing
            src = src.replace(old, new)
        p = d / f"{Path(name).stem}_ignores_{param}_{op}.cpp"
        p.write_text(src)
        jobs[(op, name, param)] = p
    for op, name in GOOD:
        jobs[(op, name, None)] = STUDENT / name
    old = os.environ.get("CONVFORGE_CXXFLAGS")
    os.environ["CONVFORGE_CXXFLAGS"] = "-O0"
    try:
        with ThreadPoolExecutor(2) as pool:
            results = dict(zip(jobs, pool.map(lambda kv: _grade(kv[1], kv[0][0]), jobs.items())))
    finally:
        if old is None:
            os.environ.pop("CONVFORGE_CXXFLAGS", None)
        else:
            os.environ["CONVFORGE_CXXFLAGS"] = old
    return results


GOOD = [("gemm", "good_gemm.cpp"), ("conv2d", "good_conv.cpp"), ("max_pool2d", "good_pool.cpp"),
        ("avg_pool2d", "good_pool.cpp")]


@pytest.mark.parametrize("op,name", GOOD)
def test_the_correct_file_passes_the_grid(graded, op, name):
    r = graded[(op, name, None)]
    assert r["status"] == "passed", G.format_report(r)
    if op != "gemm":
        assert r["backward_graded"]


@pytest.mark.parametrize("key", list(MUTANTS), ids=lambda k: f"{k[0]}-{k[2]}")
def test_a_kernel_that_ignores_a_parameter_fails(graded, key):
    r = graded[key]
    assert r["compile"]["ok"], r["compile"]
    assert r["status"] == "failed", f"the grader passed a {key[0]} kernel that ignores {key[2]}:\n{G.format_report(r)}"
    assert r["passed"] < r["total"]
