"""convforge in child processes (issue 17): after fork (multiprocessing's default start method on
Linux), from a forked child, from a thread other than the main one, and with the "spawn" and
"forkserver" start methods, every op family gives the parent's numbers. Each child is bounded by a
timeout, so that a hang (GNU libgomp's thread pool does not survive fork) fails instead of
stalling the suite; a child still alive then is killed.
"""
import multiprocessing as mp
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import convforge
import convforge.functional as F
from convforge import cuda
import fork_jobs

TIMEOUT_S = 120  # generous: a 2-core machine shared with other jobs; a hang never ends
THREADS = 2

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork and forkserver as on Linux")


@pytest.fixture(scope="module")
def student_library(tmp_path_factory):
    """The student kernel compiled once (CONVFORGE_CACHE is inherited by every child)."""
    cache = tmp_path_factory.mktemp("kernel_cache")
    old = os.environ.get("CONVFORGE_CACHE")
    os.environ["CONVFORGE_CACHE"] = str(cache)
    convforge.load_kernel(fork_jobs.STUDENT_CONV, op="conv2d")
    yield
    convforge.kernels.unload_kernel("good_conv")
    if old is None:
        os.environ.pop("CONVFORGE_CACHE", None)
    else:
        os.environ["CONVFORGE_CACHE"] = old


@pytest.fixture
def parent_used_threads():
    """The parent has run every family with 2 threads, so its OpenMP pool exists at fork time."""
    old = F.get_num_threads()
    F.set_num_threads(THREADS)
    yield
    F.set_num_threads(old)


def run_child(ctx, target, *args):
    """Runs target(queue, *args) in a child of context ctx; its message, within TIMEOUT_S."""
    q = ctx.Queue()
    p = ctx.Process(target=target, args=(q,) + args)
    p.start()
    try:
        try:
            msg = q.get(timeout=TIMEOUT_S)
        except Exception:
            pytest.fail(f"the {ctx.get_start_method()} child gave no result within {TIMEOUT_S} s "
                        f"(hung, or died with exit code {p.exitcode})")
        p.join(TIMEOUT_S)
        assert p.exitcode == 0, f"the child exited with {p.exitcode}"
        return msg
    finally:
        if p.is_alive():
            p.kill()
            p.join()


def assert_same(got, want):
    assert sorted(got) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)


FAMILIES = sorted(fork_jobs.FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_child_gives_parents_numbers(method, family, parent_used_threads, student_library):
    want, _ = fork_jobs.run(family)
    ctx = mp.get_context(method)
    # A forked child inherits the thread count; the others start from the default.
    status, got, threads = run_child(ctx, fork_jobs.child_main, family, None if method == "fork" else THREADS)
    assert status == "ok", got
    assert threads == THREADS
    assert_same(got, want)


@pytest.mark.parametrize("family", ["conv", "student"])
def test_nested_fork(family, parent_used_threads, student_library):
    want, _ = fork_jobs.run(family)
    status, got, threads = run_child(mp.get_context("fork"), fork_jobs.nested_main, family)
    assert status == "ok", got
    assert threads == THREADS
    assert_same(got, want)


def test_fork_from_a_thread_other_than_main(parent_used_threads, student_library):
    want, _ = fork_jobs.run("conv")
    result = {}

    def from_thread():
        fork_jobs.run("conv")  # this thread has a thread pool of its own, too
        result["msg"] = run_child(mp.get_context("fork"), fork_jobs.child_main, "conv")

    t = threading.Thread(target=from_thread)
    t.start()
    t.join(TIMEOUT_S + 10)
    assert not t.is_alive(), "the forking thread hung"
    status, got, threads = result["msg"]
    assert status == "ok", got
    assert threads == THREADS
    assert_same(got, want)


def test_process_pool_map_of_lenet5_forwards(parent_used_threads):
    seeds = list(range(6))
    serial = [fork_jobs.lenet_forward(s) for s in seeds]
    ex = ProcessPoolExecutor(2, mp_context=mp.get_context("fork"))
    try:
        parallel = list(ex.map(fork_jobs.lenet_forward, seeds, timeout=TIMEOUT_S))
    finally:
        procs = list(getattr(ex, "_processes", {}).values())  # a hung worker would block shutdown
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
    for got, want in zip(parallel, serial):
        np.testing.assert_array_equal(got, want)


def test_set_num_threads_from_several_threads_then_fork(parent_used_threads):
    errors, hung = fork_jobs.set_threads_while_computing(1.0)
    assert not hung and not errors, errors
    F.set_num_threads(THREADS)
    want, _ = fork_jobs.run("gemm")
    status, got, _ = run_child(mp.get_context("fork"), fork_jobs.child_main, "gemm")
    assert status == "ok", got
    assert_same(got, want)


def _cuda_child(queue, what, array):
    try:
        if what == "runtime call":
            cuda.empty_cache()
        elif what == "new array":
            cuda.to_device(np.zeros(4, np.float32))
        else:
            F.relu(array)
        queue.put(("no error", None, None))
    except RuntimeError as e:
        queue.put(("RuntimeError", str(e), None))
    except BaseException as e:
        queue.put(("other", repr(e), None))


@pytest.mark.skipif(not cuda.is_compiled(), reason="convforge was built without CUDA")
@pytest.mark.parametrize("what", ["runtime call", "new array", "parent's array"])
def test_cuda_after_fork_is_a_clear_error(what):
    cuda.device_count()  # the parent has called the CUDA runtime (with a GPU: initialised it)
    array = None
    if what != "runtime call" and not cuda.is_available():
        pytest.skip("no CUDA GPU visible")
    if what == "parent's array":
        array = cuda.to_device(np.ones((2, 3), np.float32))
        cuda.synchronize()
    status, message, _ = run_child(mp.get_context("fork"), _cuda_child, what, array)
    assert status == "RuntimeError", message
    assert "after fork" in message and "'spawn'" in message, message
    if array is not None:
        np.testing.assert_array_equal(F.relu(array).numpy(), 1.0)  # the parent is unaffected


def test_forked_child_keeps_settings(parent_used_threads):
    def target(queue):
        queue.put(("ok", {k: convforge.build_info()[k] for k in ("num_threads", "flush_denormal")}, None))

    status, info, _ = run_child(mp.get_context("fork"), target)
    assert info == {"num_threads": THREADS, "flush_denormal": F.get_flush_denormal()}

