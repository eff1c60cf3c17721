"""conv2d forward and backward against torch.nn.functional / autograd (float64), for every algo,
over a grid of edge shapes, LeNet-5 and (spatially reduced) VGG-16 layers. SIMD-dependent
algos run at every SIMD level the CPU has; the reference loops are level-independent."""
import functools
import os
import zlib

import numpy as np
import pytest
import torch

import convforge.functional as F
from convforge import _C
from conftest import BWD_TOL, FWD_TOL, num_threads, randn, rel_error

# Every algo of each op's one table (csrc/cpu/conv/conv2d.cpp), so a new algo cannot skip the grid.
FWD_ALGOS = [a["name"] for a in F.algos("conv2d_forward")]
BWD_ALGOS = [a["name"] for a in F.algos("conv2d_backward")]

# name: (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CASES = {
    "1x1": (2, 5, 7, 9, 6, 1, 1, 1, 0, 1, 1),
    "kernel_eq_padded_input": (2, 3, 5, 4, 4, 7, 6, 1, 1, 1, 1),
    "stride_gt_kernel": (2, 3, 11, 13, 5, 2, 2, 3, 0, 1, 1),
    "asym_stride_padding": (2, 4, 10, 13, 6, 3, 5, (2, 1), (1, 2), 1, 1),
    "same_odd": (1, 3, 9, 11, 5, 3, 3, 1, "same", 1, 1),
    "same_even_kernel": (2, 3, 9, 10, 4, 4, 2, 1, "same", 1, 1),
    "same_dilated": (1, 4, 12, 11, 3, 3, 2, 1, "same", (2, 3), 1),
    "valid": (2, 3, 8, 9, 4, 3, 3, 1, "valid", 1, 1),
    "dilation": (2, 3, 14, 15, 5, 3, 3, (1, 2), 2, (2, 3), 1),
    "groups": (2, 6, 9, 8, 9, 3, 3, 1, 1, 1, 3),
    "depthwise": (2, 8, 10, 11, 8, 3, 3, 2, 1, 1, 8),
    "depthwise_multiplier": (1, 4, 7, 7, 8, 3, 3, 1, 1, 1, 4),
    "batch1_odd_nonsquare": (1, 7, 13, 17, 11, 3, 5, 1, (1, 2), 1, 1),
    "wide_row_strided": (1, 3, 5, 70, 17, 3, 3, (1, 2), 1, 1, 1),
    "lenet_c1": (4, 1, 32, 32, 6, 5, 5, 1, 0, 1, 1),
    "lenet_c3": (4, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),
    "vgg_conv1_1": (2, 3, 32, 32, 64, 3, 3, 1, 1, 1, 1),
    "vgg_conv1_2": (1, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1),
    "vgg_conv2_2": (1, 128, 8, 8, 128, 3, 3, 1, 1, 1, 1),
    "vgg_conv3_2": (2, 256, 4, 4, 256, 3, 3, 1, 1, 1, 1),
    "vgg_conv5_2": (1, 512, 3, 3, 512, 3, 3, 1, 1, 1, 1),
}


def _torch(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def _args(case):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = case
    return (N, C, H, W), (K, C // groups, R, S), dict(stride=stride, padding=padding,
                                                      dilation=dilation, groups=groups)


@functools.lru_cache(maxsize=None)
def _case_data(name):
    """Fresh random inputs per case (seeded from its name and CONVFORGE_TEST_SEED) and
    torch's float64 results, computed once and shared by every algo and SIMD level."""
    xs, ws, kw = _args(CASES[name])
    seed = int(os.environ.get("CONVFORGE_TEST_SEED", "0")) ^ zlib.crc32(name.encode())
    rng = np.random.default_rng(seed)
    x, w, b = randn(rng, *xs), randn(rng, *ws), randn(rng, ws[0])
    xt, wt, bt = _torch(x), _torch(w), _torch(b)
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    y = yt.detach().numpy()
    y0 = torch.nn.functional.conv2d(xt, wt, None, **kw).detach().numpy()
    return kw, x, w, b, y, y0, gy, xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _levels(algo, simd_level):
    if algo == "reference" and simd_level != "scalar":
        pytest.skip("the reference loops do not depend on the SIMD level")


def test_algo_lists():
    # the ladder the docs and the course name is all there
    assert {"reference", "im2col", "implicit", "direct", "direct_k", "winograd", "auto"} <= set(FWD_ALGOS)
    assert {"reference", "im2col", "implicit", "direct", "auto"} <= set(BWD_ALGOS)
    for op in ("conv2d_forward", "conv2d_backward"):
        for a in F.algos(op):
            assert a["kind"] in ("reference", "teaching", "production") and a["source"] and a["when"]


@pytest.mark.parametrize("algo", ["fast", "", "AUTO"])
def test_unknown_algo_names_the_table(rng, algo):
    x, w = randn(rng, 1, 2, 5, 5), randn(rng, 3, 2, 3, 3)
    for call, names in ((lambda: F.conv2d(x, w, algo=algo), FWD_ALGOS),
                        (lambda: F.conv2d_backward(randn(rng, 1, 3, 3, 3), x, w, algo=algo), BWD_ALGOS)):
        with pytest.raises(ValueError, match="unknown algo") as e:
            call()
        for name in names:
            assert f"'{name}'" in str(e.value)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("algo", FWD_ALGOS)
@pytest.mark.parametrize("name", list(CASES))
def test_forward(simd_level, algo, name):
    _levels(algo, simd_level)
    kw, x, w, b, ref, ref0 = _case_data(name)[:6]
    assert rel_error(F.conv2d(x, w, b, algo=algo, **kw), ref) <= FWD_TOL
    assert rel_error(F.conv2d(x, w, None, algo=algo, **kw), ref0) <= FWD_TOL
    # the fused relu that layers use (bound in _C, not public)
    geom = F._conv_geometry("conv2d", x.shape, w.shape, kw["stride"], kw["padding"],
                            kw["dilation"], kw["groups"])
    assert rel_error(_C.conv2d_forward(x, w, b, geom, algo, True), np.maximum(ref, 0)) <= FWD_TOL


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("algo", BWD_ALGOS)
@pytest.mark.parametrize("name", list(CASES))
def test_backward(simd_level, algo, name):
    _levels(algo, simd_level)
    kw, x, w, _, _, _, gy, gx_ref, gw_ref, gb_ref = _case_data(name)
    gx, gw, gb = F.conv2d_backward(gy, x, w, algo=algo, **kw)
    assert rel_error(gx, gx_ref) <= BWD_TOL
    assert rel_error(gw, gw_ref) <= BWD_TOL
    assert rel_error(gb, gb_ref) <= BWD_TOL


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("N", [1, 5])
def test_threaded_paths(rng, threads, N):
    """Both threading strategies: across images (N >= threads) and inside the GEMM (N = 1),
    including the per-thread partial dW reduction; large enough to cross the GEMM's threshold."""
    xs, ws, kw = (N, 32, 20, 18), (48, 32, 3, 3), dict(stride=1, padding=1)
    x, w, b = randn(rng, *xs), randn(rng, *ws), randn(rng, ws[0])
    xt, wt, bt = _torch(x), _torch(w), _torch(b)
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    with num_threads(threads):
        for algo in ["im2col", "implicit", "direct", "direct_k", "winograd"]:
            assert rel_error(F.conv2d(x, w, b, algo=algo, **kw), yt.detach().numpy()) <= FWD_TOL
        gx, gw, gb = F.conv2d_backward(gy, x, w, algo="im2col", **kw)
        gx2, gw2, gb2 = F.conv2d_backward(gy, x, w, algo="implicit", **kw)
        for algo in ["direct", "auto"]:
            for got, ref in zip(F.conv2d_backward(gy, x, w, algo=algo, **kw),
                                (xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())):
                assert rel_error(got, ref) <= BWD_TOL, algo
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL
    assert rel_error(gb, bt.grad.numpy()) <= BWD_TOL
    assert rel_error(gx2, xt.grad.numpy()) <= BWD_TOL
    assert rel_error(gw2, wt.grad.numpy()) <= BWD_TOL
    assert rel_error(gb2, bt.grad.numpy()) <= BWD_TOL


@pytest.mark.parametrize("algo", ["im2col", "implicit", "direct", "direct_k", "winograd", "auto"])
def test_vgg_conv1_1_full_size(rng, algo):
    """A real 224 x 224 layer: the im2col tiles (bounded workspace) split each image."""
    x, w, b = randn(rng, 1, 3, 224, 224), randn(rng, 64, 3, 3, 3), randn(rng, 64)
    ref = torch.nn.functional.conv2d(_torch(x), _torch(w), _torch(b), padding=1).detach().numpy()
    assert rel_error(F.conv2d(x, w, b, padding=1, algo=algo), ref) <= FWD_TOL


def test_tiled_backward_large_image(rng):
    """P*Q larger than one im2col tile, so col2im and dW accumulate over several tiles."""
    x, w = randn(rng, 1, 24, 64, 64), randn(rng, 40, 24, 3, 3)  # 216 rows x 4096 cols: 4 tiles
    xt, wt = _torch(x), _torch(w)
    yt = torch.nn.functional.conv2d(xt, wt, None, padding=1)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    gx, gw, gb = F.conv2d_backward(gy, x, w, padding=1, algo="im2col")
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL
    assert rel_error(gb, gy.astype(np.float64).sum((0, 2, 3))) <= BWD_TOL


@pytest.mark.parametrize("threads", [1, 2])
def test_batched_im2col_input_gradient_tiles_cross_images(rng, threads):
    """Small images go through im2col's input gradient as one GEMM over the batch's columns:
    C*R*S = 4608 rows leave a tile of 227 columns (4 MiB), so with 3 x 3 outputs (9 columns an
    image, stride 2) tiles end inside images, and micro-panels of B straddle two images."""
    x, w = randn(rng, 30, 512, 5, 5), randn(rng, 6, 512, 3, 3)
    xt, wt = _torch(x), _torch(w)
    yt = torch.nn.functional.conv2d(xt, wt, None, stride=2, padding=1)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    with num_threads(threads):
        gx, _, _ = F.conv2d_backward(gy, x, w, stride=2, padding=1, algo="im2col",
                                     output_mask=(True, False, False))
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("algo, xs, ws, kw", [
    ("implicit", (3, 40, 7, 7), (64, 40, 3, 3), dict(padding=1)),
    ("im2col", (7, 12, 5, 5), (10, 6, 1, 1), dict(groups=2)),
    ("im2col", (11, 37, 6, 7), (21, 37, 1, 1), {}),
    ("im2col", (3, 5, 33, 33), (6, 5, 1, 1), {}),
])
def test_batch_gemm_segments(rng, algo, xs, ws, kw, threads):
    """One GEMM over a whole batch, its columns (image, position) pairs with C (and, for im2col's
    1x1 layers, x, dy and dx) in image segments, with bias and relu. implicit: micro-tiles that
    straddle two images (P*Q = 49 is not a multiple of the 32-column tile) in K blocks after the
    first (C*R*S = 360 > KC); 64 filters (5 micro-tiles of 14) split over 2 threads by columns.
    im2col, 1x1 stride 1 (read in place): 5 x 5 = 25 positions, so B's micro-panels straddle
    images too, with 2 groups. Its weight gradient, dy x^T as one GEMM whose reduction runs over
    the batch: 11 images of 42 positions put the KC = 256 boundary inside an image, and 37
    channels leave a partial panel of x^T; 33 x 33 = 1089 positions, per image on 2 threads."""
    x, w, b = randn(rng, *xs), randn(rng, *ws), randn(rng, ws[0])
    xt, wt = _torch(x), _torch(w)
    yt = torch.nn.functional.conv2d(xt, wt, _torch(b), **kw)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    with num_threads(threads):
        y = F.conv2d(x, w, b, algo=algo, **kw)
        geom = F._conv_geometry("conv2d", x.shape, w.shape, 1, kw.get("padding", 0), 1,
                                kw.get("groups", 1))
        yr = _C.conv2d_forward(x, w, b, geom, algo, True)
        gx, gw, _ = F.conv2d_backward(gy, x, w, algo=algo, **kw)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
    assert rel_error(yr, np.maximum(yt.detach().numpy(), 0)) <= FWD_TOL
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL


def test_direct_weight_grad_image_chunks(rng):
    """The direct weight gradient pads a bounded chunk of images at a time: 12 images of
    16 x 64 x 64 take two chunks."""
    x, w = randn(rng, 12, 16, 64, 64), randn(rng, 8, 16, 3, 3)
    xt, wt = _torch(x), _torch(w)
    yt = torch.nn.functional.conv2d(xt, wt, None, padding=1)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    _, gw, gb = F.conv2d_backward(gy, x, w, padding=1, algo="direct")
    assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL
    assert rel_error(gb, gy.astype(np.float64).sum((0, 2, 3))) <= BWD_TOL


@pytest.mark.parametrize("algo", ["winograd", "winograd_4x4"])
@pytest.mark.parametrize("shape", [(1, 512, 14), (2, 64, 9), (1, 256, 5)])
def test_winograd_vgg_sizes(rng, shape, algo):
    """Winograd F(2x2,3x3) and F(4x4,3x3) at VGG channel counts (long sums over C) and odd
    output sizes (clipped blocks), with bias and the fused relu."""
    n, c, h = shape
    x, w, b = randn(rng, n, c, h, h), randn(rng, c, c, 3, 3), randn(rng, c)
    ref = torch.nn.functional.conv2d(_torch(x), _torch(w), _torch(b), padding=1).detach().numpy()
    assert rel_error(F.conv2d(x, w, b, padding=1, algo=algo), ref) <= FWD_TOL
    geom = F._conv_geometry("conv2d", x.shape, w.shape, 1, 1, 1, 1)
    assert rel_error(_C.conv2d_forward(x, w, b, geom, algo, True), np.maximum(ref, 0)) <= FWD_TOL


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("algo", ["winograd", "winograd_4x4"])
def test_winograd_chunks_and_row_groups(rng, algo, threads):
    """Several chunks of tile rows (at most 256 tiles each) and, within a chunk, groups of tile
    rows whose last one is partial: 3 images of 38 x 39 outputs (F(4x4): 10 x 10 tiles an image,
    chunks of 25 and 5 tile rows, groups of 11, 11 and 3 rows; both sizes clip the last tiles),
    asymmetric padding, bias and relu; forward and the input gradient (the transposed
    forward)."""
    x, w, b = randn(rng, 3, 5, 37, 39), randn(rng, 7, 5, 3, 3), randn(rng, 7)
    pad = (1, 1, 2, 1)  # left, right, top, bottom
    xt, wt = _torch(x), _torch(w)
    yt = torch.nn.functional.conv2d(torch.nn.functional.pad(xt, pad), wt, _torch(b))
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    with num_threads(threads):
        y = F.conv2d(x, w, b, padding=(2, 1, 1, 1), algo=algo)
        gx, _, _ = F.conv2d_backward(gy, x, w, padding=(2, 1, 1, 1), algo=algo,
                                     output_mask=(True, False, False))
    assert y.shape == tuple(yt.shape)
    assert rel_error(y, yt.detach().numpy()) <= FWD_TOL
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL


def test_unknown_algo(rng):
    x, w = randn(rng, 1, 1, 4, 4), randn(rng, 1, 1, 3, 3)
    with pytest.raises(ValueError, match="unknown algo"):
        F.conv2d(x, w, algo="winograd_typo")
    with pytest.raises(ValueError, match="unknown algo"):
        F.conv2d_backward(randn(rng, 1, 1, 2, 2), x, w, algo="direct_typo")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", [
    (37, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),         # LeNet c3: 5 blocks of 8 (4 of 16), the last partial
    (19, 4, 11, 9, 6, 3, 2, (2, 3), (1, 2), (2, 1), 2),  # strided, dilated, asymmetric, groups
    (9, 3, 23, 23, 8, 11, 11, 4, 2, 1, 1),         # AlexNet conv1's kind: 11 x 11 stride 4
    (21, 5, 13, 17, 7, 4, 6, 1, (3, 1), (1, 2), 1),  # stride 1: the input gradient's column blocks and edges
    (17, 8, 6, 31, 4, 3, 3, 1, (0, 4), 1, 2),      # padding wider than the kernel reaches: zero columns
])
def test_direct_n_gradients_over_blocks_of_images(rng, threads, shape):
    """direct_n takes V images per vector (8 on AVX2, 16 on AVX-512) in units of blocks:
    batches of several blocks, a partial last block, the geometries the flat-position direct
    kernel does not take, and (stride 1) the input gradient with its column blocks, edge
    columns and columns no tap reaches."""
    N, C, H, W, K, R, S, stride, padding, dilation, groups = shape
    x, w = randn(rng, N, C, H, W), randn(rng, K, C // groups, R, S)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    xt, wt = _torch(x), _torch(w)
    yt = torch.nn.functional.conv2d(xt, wt, None, **kw)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    with num_threads(threads):
        gx, gw, gb = F.conv2d_backward(gy, x, w, **kw, algo="direct_n")
    assert rel_error(gx, xt.grad.numpy()) <= BWD_TOL
    assert rel_error(gw, wt.grad.numpy()) <= BWD_TOL
    assert rel_error(gb, gy.astype(np.float64).sum((0, 2, 3))) <= BWD_TOL
