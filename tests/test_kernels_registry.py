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
