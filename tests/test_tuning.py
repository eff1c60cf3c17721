"""Measured algorithm choice (convforge/tuning.py): the cache round trip through memory and disk,
atomic writes, a corrupt cache ignored with a warning, tuned choices among the eligible algos,
and results that stay correct with tuning on."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import convforge
import convforge.functional as F
from convforge import _C, tuning
from conftest import BWD_TOL, FWD_TOL, randn, rel_error


@pytest.fixture
def tuned(tmp_path, monkeypatch):
    """Tuning on, with a fresh cache folder; off and forgotten afterwards."""
    monkeypatch.setenv("CONVFORGE_CACHE", str(tmp_path))
    tuning.forget(memory_only=True)
    convforge.set_autotune(True)
    yield tmp_path / "autotune.json"
    convforge.set_autotune(False)
    tuning.forget(memory_only=True)


def _conv_case(rng, stride=1, padding=1):
    x, w, b = randn(rng, 2, 8, 12, 11), randn(rng, 16, 8, 3, 3), randn(rng, 16)
    xt, wt, bt = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    gy = randn(rng, *yt.shape)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    return x, w, b, gy, yt.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("stride", [1, 2])
def test_tuned_conv_is_correct_and_eligible(rng, tuned, stride):
    x, w, b, gy, y_ref, gx_ref, gw_ref, gb_ref = _conv_case(rng, stride)
    kw = dict(stride=stride, padding=1)
    assert rel_error(F.conv2d(x, w, b, **kw), y_ref) <= FWD_TOL
    gx, gw, gb = F.conv2d_backward(gy, x, w, **kw)
    assert rel_error(gx, gx_ref) <= BWD_TOL and rel_error(gw, gw_ref) <= BWD_TOL and rel_error(gb, gb_ref) <= BWD_TOL
    g = F._conv_geometry("conv2d", x.shape, w.shape, stride, 1, 1, 1)
    entries = json.loads(tuned.read_text())["entries"]
    for pass_ in ("forward", "backward_data", "backward_weight"):
        eligible = _C.conv2d_eligible_algos(pass_, g)
        entry = entries[tuning.conv_key(pass_, g)]
        assert entry["algo"] in eligible and set(entry["ms"]) == set(eligible)
        # the fastest, or the heuristic's choice when none beats it by more than _KEEP_FIRST
        fastest = min(entry["ms"], key=entry["ms"].get)
        heuristic = _C.conv2d_auto_choice(pass_, g)
        assert entry["algo"] == fastest or (
            entry["algo"] == heuristic
            and entry["ms"][heuristic] <= tuning._KEEP_FIRST * entry["ms"][fastest]), (pass_, entry)
    # a second call reuses the choice (and stays correct)
    assert rel_error(F.conv2d(x, w, b, **kw), y_ref) <= FWD_TOL
    # only gradients asked for: one pass each
    gx_only = F.conv2d_backward(gy, x, w, **kw, output_mask=(True, False, False))
    assert gx_only[1] is None and rel_error(gx_only[0], gx_ref) <= BWD_TOL


def test_tuned_gemm_and_linear(rng, tuned):
    a, b = randn(rng, 70, 90), randn(rng, 90, 50)
    assert rel_error(F.gemm(a, b), a.astype(np.float64) @ b) <= FWD_TOL
    assert tuning.lookup(tuning.gemm_key(70, 50, 90, False, False)) in ("blocked", "gemv")
    x, wl, bl = randn(rng, 3, 90), randn(rng, 40, 90), randn(rng, 40)
    assert rel_error(F.linear(x, wl, bl), x.astype(np.float64) @ wl.T + bl) <= FWD_TOL
    gx, gw, gb = F.linear_backward(randn(rng, 3, 40), x, wl)
    assert gx.shape == x.shape and gw.shape == wl.shape


def test_cache_round_trip_through_disk(rng, tuned):
    x, w = randn(rng, 1, 8, 12, 11), randn(rng, 16, 8, 3, 3)
    F.conv2d(x, w, padding=1)
    g = F._conv_geometry("conv2d", x.shape, w.shape, 1, 1, 1, 1)
    key = tuning.conv_key("forward", g)
    chosen = tuning.lookup(key)
    tuning.forget(memory_only=True)  # a new process: only the file remains
    assert tuning.lookup(key) == chosen
    # what is on disk is used, not re-measured: plant another eligible algo and see it chosen
    data = json.loads(tuned.read_text())
    other = next(a for a in _C.conv2d_eligible_algos("forward", g) if a != chosen)
    data["entries"][key]["algo"] = other
    tuned.write_text(json.dumps(data))
    tuning.forget(memory_only=True)
    assert tuning.conv_algo("forward", g, lambda a: pytest.fail("re-measured")) == other
    # keys differ by thread count
    previous = F.get_num_threads()
    F.set_num_threads(previous + 1)
    try:
        assert tuning.conv_key("forward", g) != key
    finally:
        F.set_num_threads(previous)


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"format": 99, "entries": {}}'])
def test_corrupt_cache_is_ignored_with_a_warning(rng, tuned, content):
    tuned.write_text(content)
    x, w = randn(rng, 1, 4, 9, 9), randn(rng, 8, 4, 3, 3)
    ref = F.conv2d(x, w, padding=1, algo="reference")
    with pytest.warns(RuntimeWarning, match="corrupt tuning cache"):
        y = F.conv2d(x, w, padding=1)
    assert rel_error(y, ref) <= FWD_TOL
    assert json.loads(tuned.read_text())["format"] == 1  # rewritten whole


def test_write_is_atomic(rng, tuned, monkeypatch):
    """A failed write leaves the old file whole and no temporary file behind."""
    x, w = randn(rng, 1, 4, 9, 9), randn(rng, 8, 4, 3, 3)
    F.conv2d(x, w, padding=1)
    before = tuned.read_text()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(tuning.os, "replace", broken_replace)
    with pytest.warns(RuntimeWarning, match="could not write the tuning cache"):
        F.conv2d(x, randn(rng, 6, 4, 5, 5), padding=2)
    assert tuned.read_text() == before
    assert os.listdir(tuned.parent) == ["autotune.json"]


@pytest.mark.skipif(os.environ.get("CONVFORGE_AUTOTUNE", "") not in ("", "0"), reason="CONVFORGE_AUTOTUNE is set")
def test_off_by_default_and_type_checked(rng, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVFORGE_CACHE", str(tmp_path))
    assert not convforge.autotune_enabled()
    code = "import convforge; print(convforge.autotune_enabled())"
    env = dict(os.environ, CONVFORGE_AUTOTUNE="1")
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.strip() == "True"
    F.conv2d(randn(rng, 1, 4, 9, 9), randn(rng, 8, 4, 3, 3), padding=1)
    assert not (tmp_path / "autotune.json").exists()
    with pytest.raises(TypeError, match="on must be a bool"):
        convforge.set_autotune("yes")


def test_tune_and_summary_commands(tmp_path, monkeypatch, capsys):
    from convforge.__main__ import main

    monkeypatch.setenv("CONVFORGE_CACHE", str(tmp_path))
    tuning.forget(memory_only=True)
    try:
        assert main(["tune", "--model", "lenet5", "--batch", "2", "--no-progress"]) == 0
        out = capsys.readouterr().out
        assert "tuned lenet5 at batch 2" in out and "(tuned)" in out
        assert main(["summary", "lenet5", "--batch", "2", "--algos"]) == 0
        rows = [line for line in capsys.readouterr().out.splitlines() if "(tuned)" in line]
        assert len(rows) == 5  # two conv layers, three linear ones
    finally:
        tuning.forget(memory_only=True)
    assert not convforge.autotune_enabled()  # tune restores the setting


@pytest.mark.parametrize("slower, kept", [(1.04, True), (1.5, False)])
def test_the_heuristic_choice_stays_unless_clearly_beaten(tuned, monkeypatch, slower, kept):
    """Timings on a shared host differ by 10-30%: another algo replaces the heuristic's choice
    only when it is more than 10% faster. The clock is faked: 'heur' takes `slower` times as
    long as 'fast'."""
    cost = {"heur": slower, "fast": 1.0, "slow": 3.0}
    now = [0.0]
    monkeypatch.setattr(tuning.time, "perf_counter", lambda: now[0])

    def run(name):
        now[0] += cost[name] / 1e3

    got = tuning.choose(f"test-key-{slower}", ["fast", "slow", "heur"], run, first="heur")
    assert got == ("heur" if kept else "fast")
    assert tuning.lookup(f"test-key-{slower}") == got


# Real layers beside the edge-case grid: (N, C, H, W, K, R, S, stride, padding, dilation, groups)
_NETWORK_LAYERS = [
    (8, 256, 56, 56, 64, 1, 1, 1, 0, 1, 1),     # ResNet-50 res2 1x1 reduce (x read in place)
    (1, 1024, 14, 14, 256, 1, 1, 1, 0, 1, 1),   # res4 1x1 reduce, N=1
    (8, 512, 28, 28, 1024, 1, 1, 2, 0, 1, 1),   # res4 projection, strided 1x1
    (8, 2048, 7, 7, 512, 1, 1, 1, 0, 1, 1),     # res5 1x1 reduce (batched GEMM)
    (1, 128, 28, 28, 128, 3, 3, 1, 1, 1, 1),    # res3 3x3, N=1
    (8, 256, 56, 56, 256, 3, 3, 1, 1, 1, 1),    # VGG conv3_2
    (1, 3, 224, 224, 64, 3, 3, 1, 1, 1, 1),     # VGG conv1_1
    (16, 3, 227, 227, 96, 11, 11, 4, 0, 1, 1),  # AlexNet conv1
    (16, 96, 27, 27, 256, 5, 5, 1, 2, 1, 1),    # AlexNet conv2
    (256, 6, 14, 14, 16, 5, 5, 1, 0, 1, 1),     # LeNet C3
    (8, 64, 56, 56, 64, 3, 3, 1, 1, 1, 64),     # depthwise
]


def test_auto_choice_is_always_a_tuning_candidate():
    # The tuner times the eligible algos with auto's choice first and keeps it within 10%; were
    # it not eligible, tuning could only lose (auto took the in-place im2col for 1x1 layers while
    # the table still marked the im2col forward as teaching: tuned 24 ms against auto's 13).
    from test_conv2d import CASES, _args
    for case in [*CASES.values(), *_NETWORK_LAYERS]:
        xs, ws, kw = _args(case)
        g = F._conv_geometry("conv2d", xs, ws, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
        for pass_ in ("forward", "backward_data", "backward_weight"):
            assert _C.conv2d_auto_choice(pass_, g) in _C.conv2d_eligible_algos(pass_, g), (case, pass_)
