"""The kernel registry and student kernels loaded at run time (convforge.kernels, load_kernel).

Student files live in tests/student_kernels/; builds are cached by content hash in pytest's cache
folder, so each file is compiled once, not once per test or per run."""
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import convforge
import convforge.functional as F
from convforge import cuda, kernels
from conftest import FWD_TOL, rel_error

HERE = Path(__file__).parent
STUDENT = HERE / "student_kernels"
REPO = HERE.parent
ASSIGNMENTS = REPO / "assignments"


pytestmark = pytest.mark.usefixtures("kernel_cache")  # conftest.py: one build cache for student files


@pytest.fixture
def student(request):
    """load_kernel, unregistered after the test."""
    names = []

    def load(path, op="conv2d", name=None):
        k = convforge.load_kernel(path, op=op, name=name)
        names.append(k.name)
        return k

    yield load
    for n in names:
        kernels.unload_kernel(n)


def test_list_names_every_op_with_kind_and_source():
    rows = kernels.list(device="cpu")
    ops = {r["op"] for r in rows}
    assert {"conv2d_forward", "conv2d_backward", "gemm", "pool2d"} <= ops
    assert {r["kind"] for r in rows} <= {"reference", "teaching", "production"}
    for r in rows:
        assert r["description"] and (REPO / r["source"]).exists(), r
    # the same as functional.algos, op by op
    conv = [r["name"] for r in rows if r["op"] == "conv2d_forward"]
    assert conv == [a["name"] for a in F.algos("conv2d_forward")]
    assert {r["name"] for r in kernels.list(op="gemm")} >= {"reference", "blocked", "auto"}


def test_student_conv_selected_by_algo_and_listed(student, rng):
    k = student(STUDENT / "good_conv.cpp", name="my_conv")
    assert k.device == "cpu" and set(k.provides) == {
        "convforge_conv2d_forward", "convforge_conv2d_backward_data", "convforge_conv2d_backward_weight"}
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((9, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    kw = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=3)
    y = F.conv2d(x, w, b, algo="my_conv", **kw)
    assert rel_error(y, F.conv2d(x, w, b, algo="reference", **kw)) < FWD_TOL
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ours = F.conv2d_backward(dy, x, w, algo="reference", **kw)
    theirs = F.conv2d_backward(dy, x, w, algo="my_conv", **kw)
    for a, b_ in zip(theirs, ours):
        assert rel_error(a, b_) < 1e-4
    rows = [r for r in kernels.list() if r["kind"] == "student"]
    assert {(r["op"], r["name"]) for r in rows} == {("conv2d_forward", "my_conv"), ("conv2d_backward", "my_conv")}
    assert rows[0]["source"].endswith("good_conv.cpp")


def test_student_conv_runs_inside_lenet5_forward_and_training_step(student, rng):
    from convforge import models, nn

    student(STUDENT / "good_conv.cpp", name="my_conv")
    nn.manual_seed(0)
    model = models.lenet5()
    x = rng.standard_normal((4, 1, 32, 32)).astype(np.float32)
    expected = np.array(model.forward(x))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2
    for m in convs:  # nn.Conv2d passes its algo to F.conv2d and F.conv2d_backward
        m.algo = "my_conv"
    got = np.array(model.forward(x))
    assert rel_error(got, expected) < FWD_TOL
    # one training step runs the student's backward too
    crit, opt = nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=0.01)
    from convforge import train

    loss, _ = train.train_step(model, crit, opt, x, np.array([0, 1, 2, 3]))
    assert np.isfinite(loss)


def test_student_gemm_with_transposes(student, rng):
    student(STUDENT / "good_gemm.cpp", op="gemm")
    a = rng.standard_normal((37, 20)).astype(np.float32)
    b = rng.standard_normal((29, 37)).astype(np.float32)
    c = rng.standard_normal((20, 29)).astype(np.float32)
    got = F.gemm(a, b, c, alpha=0.5, beta=2.0, trans_a=True, trans_b=True, algo="good_gemm")
    assert rel_error(got, 0.5 * a.T @ b.T + 2.0 * c) < 1e-5
    assert any(r["kind"] == "student" and r["op"] == "gemm" for r in kernels.list())


def test_compile_error_carries_the_compiler_message():
    with pytest.raises(convforge.KernelCompileError) as e:
        convforge.load_kernel(STUDENT / "broken_conv.cpp")
    assert "broken_conv.cpp:8:" in e.value.output and "error" in e.value.output
    assert "broken_conv.cpp:8:" in str(e.value)


def test_missing_function_and_reserved_names(tmp_path):
    with pytest.raises(ValueError, match="does not define convforge_gemm"):
        convforge.load_kernel(STUDENT / "good_conv.cpp", op="gemm")
    with pytest.raises(ValueError, match="name"):
        convforge.load_kernel(STUDENT / "good_conv.cpp", name="implicit")
    with pytest.raises(FileNotFoundError):
        convforge.load_kernel(tmp_path / "nope.cpp")


def test_cache_by_content_hash(tmp_path):
    src = tmp_path / "copy_of_good.cpp"
    shutil.copy(STUDENT / "good_gemm.cpp", src)
    lib1, _, _ = kernels.compile_kernel(src)
    lib2, _, cached = kernels.compile_kernel(src)
    assert lib1 == lib2 and cached
    src.write_text(src.read_text() + f"\n// changed {uuid.uuid4()}\n")  # new content: a new build
    lib3, _, cached3 = kernels.compile_kernel(src)
    assert lib3 != lib1 and not cached3


def test_command_line_lists_kernels(capsys):
    import argparse
    import json

    p = argparse.ArgumentParser()
    kernels.add_subcommands(p.add_subparsers(dest="command"))
    args = p.parse_args(["kernels", "--op", "gemm", "--json", "--load", str(STUDENT / "good_gemm.cpp"),
                         "--load-op", "gemm"])
    try:
        assert args.func(args) == 0
    finally:
        kernels.unload_kernel("good_gemm")
    rows = json.loads(capsys.readouterr().out)
    assert {"reference", "blocked", "good_gemm"} <= {r["name"] for r in rows}


nvcc = shutil.which("nvcc")


@pytest.mark.skipif(nvcc is None, reason="nvcc not found")
def test_cuda_student_and_every_cuda_starter_compile():
    files = [STUDENT / "good_conv.cu"] + sorted(ASSIGNMENTS.glob("cuda_*/*.cu"))
    assert len(files) >= 12
    with ThreadPoolExecutor(2) as pool:
        libs = list(pool.map(lambda f: kernels.compile_kernel(f)[0], files))
    for f, lib in zip(files, libs):
        out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True).stdout
        fn = "convforge_gemm" if "sgemm" in str(f) else "convforge_conv2d_forward"
        assert fn in out, f


@pytest.mark.cuda
@pytest.mark.skipif(not cuda.is_available(), reason="no CUDA GPU")
def test_cuda_student_conv_selected_by_algo(student, rng):
    student(STUDENT / "good_conv.cu", name="my_cuda_conv")
    x = rng.standard_normal((2, 6, 9, 8)).astype(np.float32)
    w = rng.standard_normal((9, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(9).astype(np.float32)
    kw = dict(stride=(2, 1), padding=(1, 2), groups=3)
    y = F.conv2d(cuda.to_device(x), cuda.to_device(w), cuda.to_device(b), algo="my_cuda_conv", **kw)
    assert rel_error(y.numpy(), F.conv2d(x, w, b, **kw)) < FWD_TOL


def test_student_name_clashing_with_a_cuda_algo_is_refused(monkeypatch):
    # the CUDA names are known whenever convforge was built with CUDA (GPU or not); here a stand-in
    monkeypatch.setattr(kernels, "_cuda_algos", lambda op: [{"name": "warp_tiled"}] if op == "gemm" else [])
    with pytest.raises(ValueError, match="'warp_tiled' is the name of one of our CUDA kernels"):
        convforge.load_kernel(STUDENT / "good_gemm.cpp", op="gemm", name="warp_tiled")
    assert "warp_tiled" not in kernels.student_kernels()
    monkeypatch.undo()
    if cuda.is_compiled():  # the real table
        with pytest.raises(ValueError, match="CUDA"):
            convforge.load_kernel(STUDENT / "good_conv.cpp", name="implicit_v2")


def test_student_gemm_takes_sub_matrix_views(student, rng):
    """Views of wider buffers reach the kernel as lda/ldb/ldc, in place, leaving the gaps alone."""
    k = student(STUDENT / "good_gemm.cpp", op="gemm")
    A = rng.standard_normal((9, 14)).astype(np.float32)
    B = rng.standard_normal((6, 11)).astype(np.float32)
    C = rng.standard_normal((9, 13)).astype(np.float32)
    before = C.copy()
    a, b, c = A[:, 2:8], B[:, 1:8], C[:, 3:10]  # 9x6 (lda 14), 6x7 (ldb 11), 9x7 (ldc 13)
    k.gemm(a, b, None, 0.5, 2.0, out=c)
    expected = 0.5 * a.astype(np.float64) @ b + 2.0 * before[:, 3:10]
    assert rel_error(c, expected) < 1e-5
    C[:, 3:10] = before[:, 3:10]
    np.testing.assert_array_equal(C, before)  # nothing outside the view was written


def _lenet_step(model, x):
    from convforge import nn, train

    crit, opt = nn.CrossEntropyLoss(), nn.SGD(model.parameters(), lr=0.01)
    loss, _ = train.train_step(model, crit, opt, x, np.array([0, 1, 2, 3]))
    return loss, {n: p.data.copy() for n, p in model.named_parameters()}


@pytest.mark.parametrize("layer_kind,path,op", [
    ("Linear", "good_gemm.cpp", "gemm"),
    ("MaxPool2d", "good_pool.cpp", "max_pool2d"),
    ("AvgPool2d", "good_pool.cpp", "avg_pool2d"),
])
def test_student_kernel_runs_lenet5_layers_forward_and_backward(student, rng, monkeypatch, layer_kind, path, op):
    """A student GEMM in LeNet-5's fully connected layers, a student pooling file in its pooling
    layers: the same forward output and the same training step as ours, and the student's functions
    are the ones called (backward included)."""
    from convforge import models, nn

    k = student(STUDENT / path, op=op, name=f"my_{op}")
    pooling = "avg" if op == "avg_pool2d" else "max"
    x = rng.standard_normal((4, 1, 32, 32)).astype(np.float32)
    nn.manual_seed(0)
    ours = models.lenet5(pooling=pooling)
    nn.manual_seed(0)
    theirs = models.lenet5(pooling=pooling)
    layers = [m for m in theirs.modules() if type(m).__name__ == layer_kind]
    assert len(layers) == (3 if layer_kind == "Linear" else 2)
    for m in layers:
        m.algo = k.name
    calls = []
    for fn_name, f in list(k.functions.items()):
        def counted(*a, _f=f, _n=fn_name):
            calls.append(_n)
            return _f(*a)
        monkeypatch.setitem(k.functions, fn_name, counted)
    assert rel_error(np.array(theirs.forward(x)), np.array(ours.forward(x))) < FWD_TOL
    loss_ours, p_ours = _lenet_step(ours, x)
    loss_theirs, p_theirs = _lenet_step(theirs, x)
    assert abs(loss_ours - loss_theirs) < 1e-5 * max(1.0, abs(loss_ours))
    for n in p_ours:
        assert rel_error(p_theirs[n], p_ours[n]) < 1e-5, n
    expected = {"gemm": {"convforge_gemm"}, "max_pool2d": {"convforge_max_pool2d_forward", "convforge_max_pool2d_backward"},
                "avg_pool2d": {"convforge_avg_pool2d_forward", "convforge_avg_pool2d_backward"}}[op]
    assert set(calls) == expected
    if op == "gemm":  # 3 layers x (forward + dx + dw), dx of the first layer included
        assert calls.count("convforge_gemm") >= 8


def test_student_pool_backward_arguments_are_checked(student, rng):
    student(STUDENT / "good_pool.cpp", op="max_pool2d", name="my_pool")
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True, algo="my_pool")
    dy = np.ones_like(y)
    with pytest.raises(ValueError, match="needs kernel_size"):
        F.max_pool2d_backward(dy, idx, x.shape, algo="my_pool")
    with pytest.raises(ValueError, match=r"indices must be flat positions h\*W \+ w in \[0, 36\)"):
        F.max_pool2d_backward(dy, idx + 100, x.shape, 2, algo="my_pool")
    dx = F.max_pool2d_backward(dy, idx, x.shape, 2, algo="my_pool")
    assert rel_error(dx, F.max_pool2d_backward(dy, idx, x.shape)) == 0.0
