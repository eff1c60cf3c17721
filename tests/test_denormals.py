"""Subnormal numbers (issue 22): flushed to zero inside the CPU kernels by default, IEEE 754 with
``set_flush_denormal(False)``, and the caller's floating-point mode (MXCSR / FPCR) never changed.

Inputs are integer multiples of the smallest subnormal (2^-149) or of another power of two, so
that every product and sum below is exact in any order: with flushing off our results must equal
PyTorch's bit for bit (no tolerance), and with flushing on the subnormal ones must be exactly 0.
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convforge
import convforge.functional as F
from convforge import _C

pytestmark = pytest.mark.skipif(not _C.flush_denormal_supported(),
                                reason="no flush-to-zero control on this architecture")

TINY = 2.0 ** -149         # the smallest float32 subnormal
FLT_MIN = 2.0 ** -126      # the smallest normal float32
STUDENT_GEMM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "student_kernels", "good_gemm.cpp")


def ints(rng, shape, lo, hi, scale=1.0):
    return (rng.integers(lo, hi + 1, shape) * scale).astype(np.float32)


def subnormal(rng, shape, scale=1):
    """Nonzero integer multiples of 2^-149 (|x| <= 64 * scale * 2^-149: subnormal)."""
    v = rng.integers(1, 65, shape) * rng.choice([-1, 1], shape) * scale
    return (v * TINY).astype(np.float32)


def is_subnormal(a):
    a = np.abs(np.asarray(a, np.float64))
    return (a > 0) & (a < FLT_MIN)


@pytest.fixture(params=[True, False], ids=["flush", "ieee"])
def flush(request):
    old = F.get_flush_denormal()
    F.set_flush_denormal(request.param)
    yield request.param
    F.set_flush_denormal(old)


@pytest.fixture(autouse=True)
def two_threads():
    """Two threads, so that the OpenMP worker's mode is tested too (the sizes below go parallel)."""
    old = F.get_num_threads()
    F.set_num_threads(2)
    yield
    F.set_num_threads(old)


def check(ours, ref, flush):
    """IEEE: PyTorch's values exactly (and some are subnormal, or the test proves nothing).
    Flushing: 0 where PyTorch's value is subnormal, PyTorch's value elsewhere."""
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else np.asarray(ref)
    sub = is_subnormal(ref)
    assert sub.any(), "the test's inputs give no subnormal result"
    want = np.where(sub, 0.0, ref).astype(np.float32) if flush else ref
    np.testing.assert_array_equal(ours, want)


# ---- the default and the switch -----------------------------------------------------------------

def test_on_by_default_and_switchable():
    env = {k: v for k, v in os.environ.items() if k != "CONVFORGE_FLUSH_DENORMAL"}
    code = "import convforge; print(convforge.get_flush_denormal())"
    for value, expected in [(None, "True"), ("0", "False"), ("off", "False"), ("1", "True")]:
        e = dict(env, **({"CONVFORGE_FLUSH_DENORMAL": value} if value is not None else {}))
        out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == expected, (value, out.stdout, out.stderr)


def test_info_shows_the_setting():
    out = subprocess.run([sys.executable, "-m", "convforge", "info", "--json"], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, CONVFORGE_FLUSH_DENORMAL="0"))
    assert '"flush_denormal": false' in out.stdout, out.stdout + out.stderr
    assert convforge.build_info()["flush_denormal"] == F.get_flush_denormal()


def test_set_flush_denormal_api():
    old = F.get_flush_denormal()
    try:
        assert convforge.set_flush_denormal(False) is True  # x86-64 and AArch64 support it
        assert convforge.get_flush_denormal() is False
        assert convforge.set_flush_denormal(True) is True
        assert convforge.get_flush_denormal() is True
        for bad in (1, "yes", None):
            with pytest.raises(TypeError, match="set_flush_denormal: mode must be True or False"):
                convforge.set_flush_denormal(bad)
    finally:
        F.set_flush_denormal(old)


# ---- the caller's floating-point mode -----------------------------------------------------------

def _every_family(rng):
    x, w = rng.standard_normal((4, 16, 32, 32), np.float32), rng.standard_normal((16, 16, 3, 3), np.float32)
    y = F.conv2d(x, w, padding=1)
    F.conv2d(x, w, padding=1, algo="winograd")
    F.conv2d_backward(y, x, w, padding=1)
    p, idx = F.max_pool2d(y, 2, return_indices=True)
    F.max_pool2d_backward(p, idx, y.shape)
    F.avg_pool2d_backward(F.avg_pool2d(y, 2), y.shape, 2)
    a = rng.standard_normal((300, 200), np.float32)
    F.gemm(a, a.T)
    F.linear(a, a)
    for name in ("relu", "tanh", "sigmoid"):
        getattr(F, name + "_backward")(a, getattr(F, name)(a))
    F.cross_entropy_backward(a, rng.integers(0, 200, 300))
    F.cross_entropy(a, rng.integers(0, 200, 300))
    with pytest.raises(IndexError):  # an error raised inside a kernel restores the mode too
        F.max_pool2d_backward(p, np.full_like(idx, 10 ** 6), y.shape)


@pytest.mark.parametrize("caller_flushes", [False, True], ids=["caller_ieee", "caller_ftz"])
def test_caller_mode_unchanged(rng, flush, caller_flushes):
    torch.set_flush_denormal(caller_flushes)  # sets the calling thread's MXCSR FTZ/DAZ
    try:
        before = _C._float_control_register()
        assert bool(before & _C._float_flush_bits()) == caller_flushes
        _every_family(rng)
        assert _C._float_control_register() == before
    finally:
        torch.set_flush_denormal(False)


def test_ieee_inside_even_when_the_caller_flushes(rng):
    """set_flush_denormal(False) means IEEE in the kernel, on every thread, whatever the caller set."""
    a, b = ints(rng, (256, 64), -3, 3), subnormal(rng, (64, 256))
    ref = torch.from_numpy(a) @ torch.from_numpy(b)
    old = F.get_flush_denormal()
    F.set_flush_denormal(False)
    torch.set_flush_denormal(True)
    try:
        out = F.gemm(a, b)
    finally:
        torch.set_flush_denormal(False)
        F.set_flush_denormal(old)
    check(out, ref, flush=False)


def test_openmp_workers_get_their_mode_back(rng, tmp_path, monkeypatch):
    """After a flushing call, other OpenMP code on the same threads (here a student kernel, whose
    parallel rows run on our pool's workers) computes IEEE subnormals in every row again."""
    monkeypatch.setenv("CONVFORGE_CACHE", str(tmp_path))
    k = convforge.kernels.open_kernel(STUDENT_GEMM, op="gemm")
    a, b = ints(rng, (256, 64), -3, 3), subnormal(rng, (64, 256))
    old = F.get_flush_denormal()
    F.set_flush_denormal(True)
    try:
        check(F.gemm(a, b), torch.from_numpy(a) @ torch.from_numpy(b), flush=True)  # the team flushed
    finally:
        F.set_flush_denormal(old)
    check(k.gemm(a, b), torch.from_numpy(a) @ torch.from_numpy(b), flush=False)


# ---- results against PyTorch, flushing and not --------------------------------------------------

@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("gemm")])
def test_gemm_subnormal_results(rng, flush, algo):
    # Columns of b: half subnormal (results subnormal), half normal integers (results exact).
    b = subnormal(rng, (64, 300))
    b[:, ::2] = ints(rng, (64, 150), -3, 3)
    for m in (256, 1):  # the blocked kernel and gemv
        if algo == "gemv" and m != 1:
            continue
        a = ints(rng, (m, 64), -3, 3)
        check(F.gemm(a, b, algo=algo), torch.from_numpy(a) @ torch.from_numpy(b), flush)


def test_products_that_underflow_and_subnormal_operands(rng, flush):
    # FTZ: normal operands whose products are subnormal. DAZ: a subnormal operand times a large
    # one gives a normal result in IEEE, 0 when subnormal inputs read as zero.
    a, b = ints(rng, (200, 48), -3, 3, 2.0 ** -70), ints(rng, (48, 150), -3, 3, 2.0 ** -70)
    check(F.gemm(a, b), torch.from_numpy(a) @ torch.from_numpy(b), flush)
    a, b = ints(rng, (200, 48), 1, 3, 2.0 ** 30), subnormal(rng, (48, 150))
    ref = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    assert not is_subnormal(ref).any() and np.abs(ref).max() > 0
    np.testing.assert_array_equal(F.gemm(a, b), np.zeros_like(ref) if flush else ref)


def test_linear_subnormal_results(rng, flush):
    x, w, bias = subnormal(rng, (128, 40)), ints(rng, (96, 40), -3, 3), subnormal(rng, (96,))
    check(F.linear(x, w, bias), TF.linear(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(bias)), flush)


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("conv2d_forward")])
def test_conv2d_subnormal_results(rng, flush, algo):
    # Weights are multiples of 576 = 24^2 so that Winograd's filter transforms stay exact (F(2x2):
    # 1/2 and 1/4; F(4x4): 1/4, 1/6, 1/12 and 1/24, twice) and U is an integer: every product
    # and sum is then an integer count of 2^-149, exact (the results, <= 2^21 of them, stay
    # subnormal).
    x, w = subnormal(rng, (2, 8, 20, 20)), ints(rng, (16, 8, 3, 3), -2, 2, 576.0)
    ref = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)
    check(F.conv2d(x, w, padding=1, algo=algo), ref, flush)


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("conv2d_backward")])
def test_conv2d_backward_subnormal_results(rng, flush, algo):
    # Weights are multiples of 576, as for the forward: the transposed Winograd of the input
    # gradient (algos "winograd", "winograd_4x4") divides them in its filter transform, exactly
    # only then.
    x, w, dy = ints(rng, (2, 8, 20, 20), -2, 2), ints(rng, (16, 8, 3, 3), -2, 2, 576.0), subnormal(rng, (2, 16, 20, 20))
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    bt = torch.zeros(16, requires_grad=True)
    TF.conv2d(xt, wt, bt, padding=1).backward(torch.from_numpy(dy))
    gx, gw, gb = F.conv2d_backward(dy, x, w, padding=1, algo=algo)
    check(gx, xt.grad, flush)
    check(gw, wt.grad, flush)
    check(gb, bt.grad, flush)


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("pool2d")])
def test_avg_pool2d_subnormal_results(rng, flush, algo):
    x = subnormal(rng, (8, 16, 32, 32), scale=4)  # window sums divide by 4 exactly
    ref = TF.avg_pool2d(torch.from_numpy(x), 2)
    check(F.avg_pool2d(x, 2, algo=algo), ref, flush)
    check(F.avg_pool2d_backward(x[:, :, :16, :16].copy(), x.shape, 2),
          torch.ops.aten.avg_pool2d_backward(torch.from_numpy(x[:, :, :16, :16].copy()), torch.from_numpy(x),
                                             [2, 2], [2, 2], [0, 0], False, True, None), flush)


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("pool2d")])
def test_max_pool2d_and_relu_move_subnormals(rng, flush, algo):
    """No arithmetic: without flushing, PyTorch's values and indices exactly. With it, every
    subnormal compares equal to zero, so a window's "max" is 0 or any of its elements (a SIMD max
    gives 0, a compare-and-copy keeps the first): each value is 0 or the element its index names.
    relu likewise gives 0 or passes the subnormal through (x < 0 is false for a flushed -x)."""
    x = subnormal(rng, (8, 16, 32, 32))
    p, idx = F.max_pool2d(x, 2, return_indices=True, algo=algo)
    rp, ridx = TF.max_pool2d(torch.from_numpy(x), 2, return_indices=True)
    r = F.relu(x)
    rr = torch.relu(torch.from_numpy(x)).numpy()
    if not flush:
        np.testing.assert_array_equal(p, rp.numpy())
        np.testing.assert_array_equal(idx, ridx.numpy())
        np.testing.assert_array_equal(r, rr)
    else:
        named = np.take_along_axis(x.reshape(8, 16, -1), idx.reshape(8, 16, -1), axis=2).reshape(p.shape)
        assert np.all((p == named) | (p == 0))
        assert np.all((r == rr) | (r == 0) | (r == x))


def test_every_parallel_region_of_the_kernels_sets_the_team_mode():
    """The worker threads get the mode from firstprivate(team_float_mode) (csrc/cpu/kernel_env.h);
    a region without it must say why (a comment naming team_float_mode on the line before)."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "csrc", "cpu")
    if not os.path.isdir(root):
        pytest.skip("no source tree")
    missing = []
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.endswith((".cpp", ".h")) or name.startswith("kernel_env"):
                continue
            lines = open(os.path.join(folder, name)).read().splitlines()
            for i, line in enumerate(lines):
                if line.lstrip().startswith("#pragma omp parallel") and "firstprivate(team_float_mode)" not in line:
                    if i == 0 or "team_float_mode" not in lines[i - 1]:
                        missing.append(f"{name}:{i + 1}: {line.strip()}")
    assert not missing, "parallel regions without firstprivate(team_float_mode):\n" + "\n".join(missing)
