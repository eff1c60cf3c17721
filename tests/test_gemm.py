"""GEMM, matmul, linear and linear_backward against float64 numpy / torch autograd, for every
algo at every SIMD level, at sizes that miss every tile (1, 7, 33, 100, 257 ...) and K past
one cache block (KC = 256), with every transpose, alpha/beta and the epilogues."""
import numpy as np
import pytest
import torch

import convforge
import convforge.functional as F
from convforge import _C
from conftest import BWD_TOL, FWD_TOL, num_threads, randn, rel_error

ALGOS = [a["name"] for a in F.algos("gemm")]  # the one table (csrc/cpu/gemm/gemm.cpp)

SIZES = [  # (M, N, K)
    (1, 1, 1), (7, 7, 7), (33, 33, 33), (100, 100, 100), (257, 257, 257),
    (1, 257, 33), (257, 1, 100), (7, 100, 257), (33, 7, 1), (100, 257, 7),
    (15, 29, 300), (65, 47, 600),  # K over one and two cache blocks: beta applied once
]


def test_algo_list():
    assert {"reference", "blocked", "gemv", "auto"} <= set(ALGOS)
    for a in F.algos("gemm"):
        assert a["kind"] in ("reference", "teaching", "production") and a["source"]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("mnk", SIZES, ids=lambda s: "x".join(map(str, s)))
def test_gemm_transposes_alpha_beta(rng, simd_level, algo, mnk):
    M, N, K = mnk
    for trans_a in (False, True):
        for trans_b in (False, True):
            a = randn(rng, *((K, M) if trans_a else (M, K)))
            b = randn(rng, *((N, K) if trans_b else (K, N)))
            c = randn(rng, M, N)
            c_before = c.copy()
            alpha, beta = 0.75, -1.5
            out = F.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b, algo=algo)
            opa = a.T if trans_a else a
            opb = b.T if trans_b else b
            ref = alpha * (opa.astype(np.float64) @ opb) + beta * c
            assert out.shape == (M, N) and out.dtype == np.float32
            assert rel_error(out, ref) <= FWD_TOL, (trans_a, trans_b)
            np.testing.assert_array_equal(c, c_before)  # c is not modified


@pytest.mark.parametrize("algo", ALGOS)
def test_beta_zero_never_reads_c(rng, simd_level, algo):
    a, b = randn(rng, 33, 70), randn(rng, 70, 45)
    c = np.full((33, 45), np.nan, dtype=np.float32)
    out = F.gemm(a, b, c, alpha=2.0, beta=0.0, algo=algo)
    assert rel_error(out, 2.0 * (a.astype(np.float64) @ b)) <= FWD_TOL


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("shape", [(1, 3, 1), (5, 7, 3), (64, 257, 100), (33, 100, 300)])
def test_linear_bias_epilogue_and_backward(rng, simd_level, algo, shape):
    batch, fin, fout = shape
    x, w, bias = randn(rng, batch, fin), randn(rng, fout, fin), randn(rng, fout)
    y = F.linear(x, w, bias, algo=algo)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    yt = torch.nn.functional.linear(xt, wt, torch.tensor(bias, dtype=torch.float64))
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
    assert rel_error(F.linear(x, w, algo=algo), x.astype(np.float64) @ w.T) <= FWD_TOL
    gy = randn(rng, batch, fout)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    gx, gw, gb = F.linear_backward(gy, x, w, algo=algo)
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL
    assert rel_error(gb, gy.astype(np.float64).sum(0)) <= BWD_TOL


def test_matmul(rng, simd_level):
    a, b = randn(rng, 129, 65), randn(rng, 65, 257)
    assert rel_error(F.matmul(a, b), a.astype(np.float64) @ b) <= FWD_TOL


@pytest.mark.parametrize("mnk", [(300, 300, 300), (20, 2000, 300), (1000, 9, 200), (64, 500, 300), (15, 700, 300)],
                         ids=lambda s: "x".join(map(str, s)))
def test_blocked_threaded(rng, mnk):
    """Threaded paths: split over ic blocks, and over columns when M gives too few blocks or
    micro-tiles that do not share out evenly (64 rows: 5 tiles of 14; 15 rows: 3 tiles of 6).
    With one ic block a transposed B is packed panel by panel by the thread that uses each
    panel, over two K blocks (beta applied once)."""
    M, N, K = mnk
    a, c = randn(rng, M, K), randn(rng, M, N)
    for trans_b in (False, True):
        b = randn(rng, *((N, K) if trans_b else (K, N)))
        with num_threads(2):
            out = F.gemm(a, b, c, alpha=1.25, beta=0.5, trans_b=trans_b, algo="blocked")
        ref = 1.25 * (a.astype(np.float64) @ (b.T if trans_b else b)) + 0.5 * c
        assert rel_error(out, ref) <= FWD_TOL, trans_b


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("mnk", [(131, 61, 300), (200, 17, 650), (1030, 64, 70), (129, 1, 5)],
                         ids=lambda s: "x".join(map(str, s)))
def test_sup_reads_a_in_place(rng, mnk, threads):
    """The skinny GEMM (sup: N <= 64, M > 128, A not transposed) reads A's rows in place: whole
    blocks of 6 rows, the last partial one packed (131 = 21 * 6 + 5), K over several KC blocks
    (beta once, bias and relu after the last), B transposed or not, columns off the 16-wide
    panels; the rows split over 2 threads."""
    M, N, K = mnk
    if _C.cpu_config()["name"] == "avx2":  # the one config with a sup kernel so far
        assert _C.gemm_auto_choice(M, N, K, False, True) == "sup"
        assert "sup" in _C.gemm_eligible_algos(M, N, K, False, False)
    assert "sup" not in _C.gemm_eligible_algos(M, N, K, True, False)  # A transposed: blocked's
    a, c = randn(rng, M, K), randn(rng, M, N)
    for trans_b in (False, True):
        b = randn(rng, *((N, K) if trans_b else (K, N)))
        with num_threads(threads):
            out = F.gemm(a, b, c, alpha=0.75, beta=-1.5, trans_b=trans_b, algo="sup")
        ref = 0.75 * (a.astype(np.float64) @ (b.T if trans_b else b)) + -1.5 * c
        assert rel_error(out, ref) <= FWD_TOL, trans_b
    x, w, bias = a, randn(rng, N, K), randn(rng, N)  # linear: x W^T + bias (the column bias)
    with num_threads(threads):
        y = F.linear(x, w, bias, algo="sup")
    assert rel_error(y, x.astype(np.float64) @ w.T + bias) <= FWD_TOL


def test_unknown_algo(rng):
    with pytest.raises(ValueError, match="unknown algo"):
        F.gemm(randn(rng, 2, 2), randn(rng, 2, 2), algo="fast")
