"""Index and size safety: sizes whose element counts would overflow 64-bit indexing raise
OverflowError, and outputs/workspaces larger than the memory available raise MemoryError naming
the bytes asked for - both before anything is allocated (csrc/bindings/cpu_module.cpp:
new_output/check_memory; csrc/common/geometry.h: checked_product).

Tiny inputs make huge outputs: a K = 0 GEMM, huge padding, a backward's input_shape. The
"available" memory is the machine's (MemAvailable + SwapFree, capped by a cgroup limit) or, for
the middle-sized tests, what _C._set_memory_limit pretends.
"""
import re

import numpy as np
import pytest

import convforge.functional as F
from convforge import _C

TIB4 = 4 * 2**40  # bytes of a 2^20 x 2^20 float32 output


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.fixture
def memory_limit():
    """Pretend only `limit` bytes are available; restores the machine's view afterwards."""
    def set_limit(limit):
        _C._set_memory_limit(limit)
    yield set_limit
    _C._set_memory_limit(-1)


def empty(*shape):
    return np.zeros(shape, np.float32)


def bytes_in(msg):
    return int(re.search(r"needs (\d+) bytes", msg).group(1))


# ---------------------------------------------------------------------------------------------
# larger than the machine
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("what, call, expected", [
    ("gemm", lambda: F.gemm(empty(2**20, 0), empty(0, 2**20)), TIB4),
    ("gemm_t", lambda: F.gemm(empty(0, 2**20), empty(2**20, 0), trans_a=True, trans_b=True), TIB4),
    ("matmul", lambda: F.matmul(empty(2**20, 0), empty(0, 2**20)), TIB4),
    ("linear", lambda: F.linear(empty(2**20, 0), empty(2**20, 0)), TIB4),
    ("conv2d_padding", lambda: F.conv2d(empty(1, 1, 1, 1), empty(1, 1, 1, 1), padding=2**20 - 1),
     (2**21 - 1) ** 2 * 4),
    ("avg_pool2d_backward", lambda: F.avg_pool2d_backward(empty(1, 1, 1, 1), (1, 1, 2**20, 2**20), 2**20), TIB4),
    ("max_pool2d_backward", lambda: F.max_pool2d_backward(empty(1, 1, 1, 1), np.zeros((1, 1, 1, 1), np.int64),
                                                          (1, 1, 2**20, 2**20)), TIB4),
])
def test_output_larger_than_memory_is_memory_error(what, call, expected):
    before = rss_bytes()
    with pytest.raises(MemoryError, match=r"needs \d+ bytes .* but only \d+ bytes are available") as e:
        call()
    assert bytes_in(str(e.value)) >= expected  # conv2d adds its im2col workspace
    assert rss_bytes() - before < 64 * 2**20, "memory was allocated before the refusal"


def test_just_over_available_memory_is_refused():
    """A request 1.5x what the machine has free is refused, not attempted (and OOM-killed)."""
    avail = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    if avail is None:
        pytest.skip("no /proc/meminfo")
    n = int((avail * 1.5 / 4) ** 0.5) + 1
    with pytest.raises(MemoryError, match=f"needs {n * n * 4} bytes"):
        F.gemm(empty(n, 0), empty(0, n))


# ---------------------------------------------------------------------------------------------
# 64-bit overflow
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call", [
    lambda: F.gemm(empty(2**40, 0), empty(0, 2**40)),
    lambda: F.linear(empty(2**40, 0), empty(2**40, 0)),
    lambda: F.max_pool2d_backward(empty(2**20, 2**20, 0, 1), np.zeros((2**20, 2**20, 0, 1), np.int64),
                                  (2**20, 2**20, 2**12, 2**12)),
    lambda: F.avg_pool2d_backward(empty(2**20, 2**20, 0, 1), (2**20, 2**20, 2**12, 2**12), 2),
    lambda: F.conv2d(empty(1, 1, 1, 1), empty(1, 1, 1, 1), padding=2**61),
    lambda: _C.conv2d_geometry((2**20, 2**20, 2**12, 2**12), (1, 2**20, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    lambda: _C.pool2d_geometry((2**31, 2**31, 2**10, 2**10), (1, 1), (1, 1), (0, 0), (1, 1), False),
], ids=["gemm", "linear", "max_pool2d_backward", "avg_pool2d_backward",
        "conv2d_padding", "conv2d_geometry", "pool2d_geometry"])
def test_element_count_overflow_is_a_clear_error(call):
    # OverflowError when the count does not fit 64-bit byte offsets; a zero-size dimension may
    # also be refused first as a ValueError ("must be positive").
    with pytest.raises((OverflowError, ValueError), match="64-bit|must be positive"):
        call()


def test_sizes_beyond_int64_are_clean_errors():
    with pytest.raises((OverflowError, TypeError, ValueError)):
        F.max_pool2d_backward(empty(1, 1, 1, 1), np.zeros((1, 1, 1, 1), np.int64), (1, 1, 2**70, 1))
    with pytest.raises((OverflowError, TypeError, ValueError)):
        F.conv2d(empty(1, 1, 4, 4), empty(1, 1, 3, 3), stride=2**64)
    with pytest.raises((OverflowError, TypeError, ValueError)):
        F.max_pool2d(empty(1, 1, 4, 4), 2, padding=2**63)


# ---------------------------------------------------------------------------------------------
# refused before allocation, with the (test hook's) limit
# ---------------------------------------------------------------------------------------------

def test_refused_before_allocating(memory_limit):
    """A 1 GiB output with 256 MiB 'available': MemoryError and no growth of resident memory
    (with poisoned outputs on, an allocated output would be written in full)."""
    memory_limit(256 * 2**20)
    before = rss_bytes()
    with pytest.raises(MemoryError, match=f"gemm output of shape \\(16384, 16384\\) needs {2**30} bytes"):
        F.gemm(empty(16384, 0), empty(0, 16384))
    assert rss_bytes() - before < 32 * 2**20


def test_max_pool_counts_the_indices(memory_limit):
    x = np.ones((1, 1, 256, 256), np.float32)  # output 256 KiB, indices 512 KiB
    memory_limit(512 * 1024)
    F.max_pool2d(x, 1)  # the output alone fits
    with pytest.raises(MemoryError, match=r"plus 524288 bytes of indices"):
        F.max_pool2d(x, 1, return_indices=True)


def test_conv_counts_the_im2col_workspace(memory_limit):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((1, 64, 20, 20), np.float32), rng.standard_normal((2, 64, 5, 5), np.float32)
    y_bytes = 2 * 16 * 16 * 4
    memory_limit(y_bytes + 1024)
    y = F.conv2d(x, w, algo="direct")  # no workspace
    with pytest.raises(MemoryError, match="bytes of workspace"):
        F.conv2d(x, w, algo="im2col")
    with pytest.raises(MemoryError, match="workspace"):
        F.conv2d_backward(np.ones_like(y), x, w, algo="im2col")
    memory_limit(-1)
    np.testing.assert_allclose(F.conv2d(x, w, algo="im2col"), y, rtol=1e-4, atol=1e-4)


def test_every_output_is_checked(memory_limit):
    """With nothing 'available', every op that allocates refuses cleanly (no crash, no partial result)."""
    memory_limit(0)
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)
    calls = [
        lambda: F.conv2d(x, w), lambda: F.conv2d_backward(np.ones((1, 3, 3, 3), np.float32), x, w),
        lambda: F.max_pool2d(x, 2), lambda: F.avg_pool2d(x, 2),
        lambda: F.avg_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), x.shape, 2),
        lambda: F.max_pool2d_backward(np.ones((1, 2, 2, 2), np.float32), np.zeros((1, 2, 2, 2), np.int64), x.shape),
        lambda: F.gemm(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)),
        lambda: F.linear(np.ones((3, 4), np.float32), np.ones((5, 4), np.float32)),
    ]
    for call in calls:
        with pytest.raises(MemoryError, match="needs"):
            call()
    memory_limit(-1)
    assert F.conv2d(x, w).shape == (1, 3, 3, 3)
