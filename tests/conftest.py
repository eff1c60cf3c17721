"""Shared test helpers: fresh random inputs, the relative-error measure, poisoned outputs."""
import contextlib
import os
import zlib

import numpy as np
import pytest

import convforge
from convforge import _C

# Tolerances of the foundation issue: ||out - ref|| / ||ref||.
FWD_TOL = 1e-5
BWD_TOL = 1e-4


def rel_error(out, ref) -> float:
    """||out - ref|| / ||ref|| in float64; inf when out has NaN (an unwritten, poisoned element)."""
    out = np.asarray(out, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape, f"shape {out.shape} != reference shape {ref.shape}"
    if not np.all(np.isfinite(out)):
        return float("inf")
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(out - ref) / (denom if denom > 0 else 1.0))


@contextlib.contextmanager
def num_threads(n):
    """convforge's kernels run on n threads inside the block; the previous count after it."""
    previous = convforge.functional.get_num_threads()
    convforge.functional.set_num_threads(n)
    try:
        yield
    finally:
        convforge.functional.set_num_threads(previous)


def randn(rng, *shape):
    """Standard-normal float32 without exact zeros (zeros hide unwritten outputs)."""
    return rng.standard_normal(shape).astype(np.float32)


@pytest.fixture
def rng(request):
    """A generator seeded from the test's id: fresh inputs per test, reproducible per run."""
    seed = int(os.environ.get("CONVFORGE_TEST_SEED", "0")) ^ zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)


@pytest.fixture(autouse=True)
def poisoned_outputs():
    """Every output buffer starts as NaN, so a kernel that skips an element fails its test."""
    _C._set_poison_outputs(True)
    yield
    _C._set_poison_outputs(False)


@pytest.fixture(scope="module")
def kernel_cache(request, tmp_path_factory):
    """$CONVFORGE_CACHE set to one folder for the module's tests: pytest's cache folder, so each student
    file compiles once across test files and runs (a temporary folder under -p no:cacheprovider)."""
    old = os.environ.get("CONVFORGE_CACHE")
    os.environ["CONVFORGE_CACHE"] = str(request.config.cache.mkdir("convforge_kernels") if getattr(request.config, "cache", None)
                                       else tmp_path_factory.mktemp("convforge_kernels"))
    yield
    if old is None:
        os.environ.pop("CONVFORGE_CACHE", None)
    else:
        os.environ["CONVFORGE_CACHE"] = old


@pytest.fixture
def ieee_subnormals():
    """IEEE 754 subnormals in the CPU kernels (convforge flushes them to zero by default), for tests
    whose inputs are subnormal on purpose and compare with PyTorch's default, IEEE, results."""
    previous = convforge.get_flush_denormal()
    convforge.set_flush_denormal(False)
    yield
    convforge.set_flush_denormal(previous)


# The SIMD levels of this build's architecture (x86-64 or AArch64), lowest first.
_LADDER = ["scalar", "neon"] if "neon" in _C._simd_levels() else ["scalar", "avx2", "avx512"]


@pytest.fixture(params=_LADDER)
def simd_level(request):
    """Runs a test once per SIMD level this CPU supports (the portable fallback included)."""
    if request.param not in _C._simd_levels():
        pytest.skip(f"this CPU does not support {request.param}")
    previous = _C.simd_level()
    _C._set_simd_level(request.param)
    yield request.param
    _C._set_simd_level(previous)


torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # keep torch's pool from fighting ours on small machines
