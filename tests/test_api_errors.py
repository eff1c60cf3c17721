"""Bad input raises a clear TypeError/ValueError naming the argument and the shapes; nothing crashes."""
import re

import numpy as np
import pytest

import convforge.functional as F

from conftest import randn


def x4(rng, *shape):
    return randn(rng, *shape)


@pytest.mark.parametrize(
    "call, exc, pattern",
    [
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8).astype(np.float64), x4(r, 4, 3, 3, 3)), TypeError, r"x must have dtype float32, got float64"),
        (lambda r: F.conv2d([[1.0]], x4(r, 4, 3, 3, 3)), TypeError, r"x must be a float32 numpy array"),
        (lambda r: F.conv2d(x4(r, 3, 8, 8), x4(r, 4, 3, 3, 3)), ValueError, r"x must be 4-D .* got shape \(3, 8, 8\)"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 2, 3, 3)), ValueError, r"expected weight to have 3 input channels.*\(4, 2, 3, 3\)"),
        (lambda r: F.conv2d(x4(r, 1, 6, 8, 8), x4(r, 4, 3, 3, 3), groups=4), ValueError, r"divisible by groups"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), stride=0), ValueError, r"stride must be positive"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), stride=(1, -2)), ValueError, r"stride must be positive"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), padding=-1), ValueError, r"padding must be non-negative"),
        (lambda r: F.conv2d(x4(r, 1, 3, 4, 4), x4(r, 4, 3, 7, 7), padding=1), ValueError, r"kernel size \(7, 7\) is larger than the padded input \(6, 6\)"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), dilation=0), ValueError, r"dilation must be positive"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), padding="full"), ValueError, r"padding must be"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), stride=2, padding="same"), ValueError, r"'same' is not supported for strided"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), randn(r, 5)), ValueError, r"bias must have shape \(4,\)"),
        (lambda r: F.conv2d_backward(x4(r, 1, 4, 5, 5), x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3)), ValueError, r"grad_out must have shape \(1, 4, 6, 6\)"),
        (lambda r: F.max_pool2d(x4(r, 1, 3, 8, 8), 3, padding=2), ValueError, r"at most half"),
        (lambda r: F.max_pool2d(x4(r, 1, 3, 2, 2), 3), ValueError, r"larger than the padded input"),
        (lambda r: F.max_pool2d(x4(r, 1, 3, 8, 8), 0), ValueError, r"kernel_size must be positive"),
        (lambda r: F.max_pool2d(x4(r, 1, 3, 1, 5), 2, stride=1, padding=1, dilation=2), ValueError, r"some windows contain no input pixel"),
        (lambda r: F.avg_pool2d(x4(r, 1, 3, 8, 8), 2, stride=0), ValueError, r"stride must be positive"),
        (lambda r: F.avg_pool2d(x4(r, 1, 3, 8, 8).astype(np.float16), 2), TypeError, r"float32, got float16"),
        (lambda r: F.max_pool2d_backward(x4(r, 1, 3, 4, 4), np.zeros((1, 3, 4, 4), np.int64), (1, 3, 8, 8, 1)), ValueError, r"input_shape must be 4"),
        (lambda r: F.max_pool2d_backward(x4(r, 1, 3, 4, 4), np.zeros((1, 3, 4, 4), np.float32), (1, 3, 8, 8)), TypeError, r"indices must have an integer dtype"),
        (lambda r: F.gemm(randn(r, 3, 4), randn(r, 5, 6)), ValueError, r"inner dimensions 4 and 5 differ"),
        (lambda r: F.gemm(randn(r, 3, 4), randn(r, 4, 6), randn(r, 3, 5), beta=1.0), ValueError, r"c must have shape \(3, 6\)"),
        (lambda r: F.gemm(randn(r, 3, 4, 1), randn(r, 4, 6)), ValueError, r"a must be 2-D"),
        (lambda r: F.linear(randn(r, 3, 4), randn(r, 5, 6)), ValueError, r"x must have shape \(\*, 6\)"),
        (lambda r: F.cross_entropy(randn(r, 4, 10), np.array([0, 1, 10, 2])), ValueError, r"labels must be in \[0, 10\).*from 0 to 10"),
        (lambda r: F.cross_entropy(randn(r, 4, 10), np.array([0, -1, 3, 2])), ValueError, r"labels must be in \[0, 10\)"),
        (lambda r: F.cross_entropy(randn(r, 4, 10), np.array([0.0, 1.0, 3.0, 2.0])), TypeError, r"labels must have an integer dtype"),
        (lambda r: F.cross_entropy(randn(r, 4, 10), np.array([0, 1, 3])), ValueError, r"labels must have shape \(4,\)"),
        (lambda r: F.relu_backward(randn(r, 4, 10), randn(r, 4, 9)), ValueError, r"x must have shape \(4, 10\)"),
        (lambda r: F.conv_output_size(5, 7), ValueError, r"larger than the padded input"),
        (lambda r: F.conv_output_size(5, 3, stride=0), ValueError, r"must be positive"),
        (lambda r: F.set_num_threads(0), ValueError, r"n must be >= 1"),
        (lambda r: F.conv2d(x4(r, 1, 3, 8, 8), x4(r, 4, 3, 3, 3), algo="nope"), ValueError, r"nope"),
    ],
)
def test_bad_input_raises_clear_error(rng, call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(rng)


def test_index_overflow_is_an_error_not_a_crash():
    # 2^62 elements: the element count would overflow 64-bit byte offsets.
    with pytest.raises(OverflowError, match="64-bit"):
        F._C.conv2d_geometry((2**20, 2**20, 2**12, 2**12), (1, 2**20, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1)


def test_out_of_range_pool_indices_raise(rng):
    x = randn(rng, 1, 2, 6, 6)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    bad = idx.copy()
    bad[0, 1, 0, 0] = 36
    with pytest.raises((IndexError, ValueError), match="indices"):
        F.max_pool2d_backward(np.ones_like(y), bad, x.shape)


def test_conv_output_size_rule():
    assert F.conv_output_size(32, 5) == 28
    assert F.conv_output_size(224, 3, 1, 1) == 224
    assert F.conv_output_size(7, 3, stride=2, padding=1) == 4
    assert F.conv_output_size(10, 3, dilation=2) == 6
    for n, f, s, p, d in [(5, 3, 1, 0, 1), (28, 5, 1, 2, 1), (13, 4, 3, 1, 2), (6, 6, 1, 0, 1)]:
        assert F.conv_output_size(n, f, s, p, d) == (n + 2 * p - d * (f - 1) - 1) // s + 1


def test_cpu_torch_tensor_says_call_numpy():
    import torch

    import convforge.functional as F

    x = torch.zeros(1, 1, 5, 5)
    w = np.zeros((1, 1, 3, 3), np.float32)
    with pytest.raises(TypeError, match=r"conv2d: x is a torch.Tensor on the CPU.*x\.numpy\(\)") as e:
        F.conv2d(x, w)
    assert "CUDA" not in str(e.value)
    with pytest.raises(TypeError, match=r"weight is a torch.Tensor on the CPU"):
        F.conv2d(x.numpy(), torch.zeros(1, 1, 3, 3))
    with pytest.raises(TypeError, match=r"labels is a torch.Tensor on the CPU"):
        F.cross_entropy(np.zeros((2, 3), np.float32), torch.tensor([0, 1]))
    np.testing.assert_array_equal(F.relu(x.numpy()), np.zeros((1, 1, 5, 5), np.float32))  # the advice works


def test_remembered_geometry_still_checks_arguments(rng):
    """Geometries are remembered by their raw arguments (functional._GEOMETRY_MEMO); arguments the
    checks reject must still be rejected after an equal-looking valid call, and a remembered
    geometry must equal a freshly built one."""
    x, w = randn(rng, 2, 3, 9, 9), randn(rng, 4, 3, 3, 3)
    y = F.conv2d(x, w, stride=1, padding=1)
    for bad in (True, 1.0, np.float32(1)):
        with pytest.raises(TypeError, match="conv2d: stride must be an int"):
            F.conv2d(x, w, stride=bad, padding=1)
    with pytest.raises(TypeError, match="groups must be an int"):
        F.conv2d(x, w, padding=1, groups=True)
    np.testing.assert_array_equal(F.conv2d(x, w, stride=[1, 1], padding=[1, 1]), y)  # lists: unremembered path
    F._GEOMETRY_MEMO.clear()
    np.testing.assert_array_equal(F.conv2d(x, w, stride=1, padding=1), y)
    F.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="max_pool2d: kernel_size must be an int"):
        F.max_pool2d(x, True)
    with pytest.raises(ValueError, match="max_pool2d"):
        F.max_pool2d(x, 2, padding=2)  # over half the kernel: never remembered
    with pytest.raises(ValueError, match="max_pool2d"):
        F.max_pool2d(x, 2, padding=2)
    g1 = F._conv_geometry("conv2d", x.shape, w.shape, 2, (1, 0), 1, 1)
    g2 = F._conv_geometry_checked("conv2d", x.shape, w.shape, 2, (1, 0), 1, 1)
    assert repr(g1) == repr(g2) and (g1.pad_top, g1.pad_left, g1.P, g1.Q) == (g2.pad_top, g2.pad_left, g2.P, g2.Q)
