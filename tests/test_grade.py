"""The grader (convforge.grade): a correct student kernel passes and is timed, a wrong one is caught
with its first wrong index, one that does not compile gets the compiler's message, one that
crashes is reported as a crash, and every CPU starter in assignments/ fails cleanly as handed out."""
import json
from pathlib import Path

import pytest

from convforge import grade as G

HERE = Path(__file__).parent
STUDENT = HERE / "student_kernels"
ASSIGNMENTS = HERE.parent / "assignments"


pytestmark = pytest.mark.usefixtures("kernel_cache")  # conftest.py: one build cache for student files


def test_correct_kernel_passes_forward_and_backward_and_is_timed(monkeypatch):
    monkeypatch.setitem(G.BENCH, ("conv2d", "cpu"), (1, 16, 12, 12, 16, 3, 3, 1, 1, 1, 1))  # keep it quick
    r = G.grade(STUDENT / "good_conv.cpp", "conv2d", seed=3)
    assert r["status"] == "passed", G.format_report(r)
    assert r["backward_graded"] and r["passed"] == r["total"] >= 20
    names = {c["name"] for c in r["cases"]}
    assert {"1x1", "depthwise", "dilation", "lenet_c3", "vgg_conv5_2", "random_0"} <= names
    checks = r["cases"][0]["checks"]
    assert {"y", "dx", "dw"} <= set(checks) and all(c["ok"] for c in checks.values())
    rows = {row["name"]: row for row in r["timing"]["rows"]}
    assert {"yours", "ours: reference", "ours: auto"} <= set(rows)
    assert rows["yours"]["gflops"] > 0 and rows["yours"]["pct_peak"] > 0
    assert r["timing"]["fastest_ours"]
    text = G.format_report(r)
    assert "PASSED" in text and "GFLOP/s" in text and "% of peak" in text


def test_random_shapes_follow_the_seed():
    assert G.cases("conv2d", seed=1) == G.cases("conv2d", seed=1)
    assert G.cases("conv2d", seed=1)[-1] != G.cases("conv2d", seed=2)[-1]


def test_wrong_kernel_reports_first_wrong_index():
    r = G.grade(STUDENT / "wrong_conv.cpp", "conv2d", timing=False)
    assert r["status"] == "failed" and r["timing"] is None
    bad = {c["name"]: c for c in r["cases"] if c["status"] == "wrong"}
    assert "dilation" in bad and "1x1" not in bad
    fw = bad["dilation"]["checks"]["y"]["first_wrong"]
    assert len(fw["index"]) == 4 and fw["expected"] != fw["actual"] and fw["wrong_elements"] > 0
    assert "first wrong y[" in G.format_report(r)


def test_compile_error_shows_the_compiler_message(capsys):
    import argparse

    p = argparse.ArgumentParser()
    G.add_subcommands(p.add_subparsers(dest="command"))
    args = p.parse_args(["grade", str(STUDENT / "broken_conv.cpp"), "--op", "conv2d", "--json"])
    assert args.func(args) == 1
    r = json.loads(capsys.readouterr().out)
    assert r["status"] == "compile_error"
    assert "broken_conv.cpp:8:" in r["compile"]["output"] and "error" in r["compile"]["output"]


def test_crashing_kernel_is_reported_and_the_grader_survives():
    r = G.grade(STUDENT / "crash_conv.cpp", "conv2d", timing=False, n_random=0,
                case_names=["1x1", "groups", "depthwise", "lenet_c1"])
    by = {c["name"]: c for c in r["cases"]}
    assert r["status"] == "failed"
    assert by["groups"]["status"] == "crash" and "SIGSEGV" in by["groups"]["message"]
    assert by["depthwise"]["status"] == "crash"
    assert by["1x1"]["status"] == "pass" and by["lenet_c1"]["status"] == "pass"  # run in a fresh child
    assert "CRASH" in G.format_report(r)


CPU_STARTERS = sorted(ASSIGNMENTS.glob("cpu_*/*.cpp"))


@pytest.mark.parametrize("path", CPU_STARTERS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cpu_starter_compiles_and_fails_cleanly(path):
    op = "gemm" if "sgemm" in path.parent.name else "conv2d"
    quick = ["1x1", "groups"] if op == "conv2d" else ["small_odd", "alpha_beta"]
    r = G.grade(path, op, timing=False, n_random=0, case_names=quick)
    assert r["compile"]["ok"], r["compile"]
    assert r["status"] == "failed" and r["total"] == 2
    for c in r["cases"]:
        assert c["status"] == "wrong", c  # not a crash, not a timeout: the output was left unwritten
        assert c["checks"]["y"]["first_wrong"]["never_written"] or c["checks"]["y"]["rel_error"] > 0


def test_every_ladder_has_a_page_with_grading_commands():
    ladders = [d for d in ASSIGNMENTS.iterdir() if d.is_dir()]
    assert {d.name for d in ladders} >= {"cpu_conv2d", "cpu_sgemm", "cuda_sgemm", "cuda_conv2d"}
    for d in ladders:
        page = (d / "README.md").read_text()
        for f in d.glob("step*"):
            assert f.name in page and "convforge grade" in page, (d, f)


# ---- timings a student can trust ----------------------------------------------------------------

def test_timing_alternates_in_one_child_with_median_spread_and_threads(monkeypatch):
    import os

    monkeypatch.setitem(G.BENCH, ("gemm", "cpu"), G._gemm(96, 96, 96))
    monkeypatch.setenv("CONVFORGE_GRADE_BENCH_SECONDS", "0.2")  # read by the timing child
    r = G.grade(STUDENT / "good_gemm.cpp", "gemm", n_random=0, case_names=["small_odd"])
    assert r["status"] == "passed", G.format_report(r)
    t = r["timing"]
    assert t["pid"] and t["pid"] != os.getpid() and t["alternated"]
    rows = {row["name"]: row for row in t["rows"]}
    assert {"yours", "ours: reference", "ours: auto", "PyTorch (CPU BLAS)"} <= set(rows)
    for row in rows.values():
        assert row["reps"] >= G.MIN_REPS
        assert row["min"] <= row["p10"] <= row["median"] <= row["p90"] <= row["max"]
        assert row["seconds"] == row["median"] and isinstance(row["threads"], int) and row["threads"] >= 1
        assert isinstance(row["wide_spread"], bool)
    text = G.format_report(r)
    assert "median [min-max]" in text and "threads" in text and "alternating" in text


def test_contenders_are_timed_in_alternation():
    order = []
    contenders = [{"name": n, "fn": (lambda n=n: order.append(n))} for n in "abc"]
    rows = G.time_alternating(contenders, budget=0.0, min_reps=4, max_reps=4)
    assert [r["reps"] for r in rows] == [4, 4, 4]
    timed = order[3:]  # after one warm-up call each
    assert len(timed) == 12 and all(set(timed[i:i + 3]) == set("abc") for i in range(0, 12, 3))
    assert timed[:3] != timed[3:6]  # the order rotates


def test_wide_spread_is_flagged(monkeypatch):
    monkeypatch.setitem(G.BENCH, ("gemm", "cpu"), G._gemm(8, 8, 8))
    monkeypatch.setenv("CONVFORGE_GRADE_BENCH_SECONDS", "0.1")
    r = G.grade(STUDENT / "jittery_gemm.cpp", "gemm", n_random=0, case_names=["small_odd"])
    rows = {row["name"]: row for row in r["timing"]["rows"]}
    assert rows["yours"]["wide_spread"] and rows["yours"]["spread"] > G.WIDE_SPREAD
    assert "yours" in r["timing"]["wide_spread"]
    assert "cannot be compared" in G.format_report(r)


# ---- without torch ------------------------------------------------------------------------------

def _no_torch_env(tmp_path):
    """An environment in which `import torch` fails, as with only convforge[train] installed."""
    import os
    import sys

    shadow = tmp_path / "no_torch"
    (shadow / "torch").mkdir(parents=True)
    (shadow / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(shadow)] + [p for p in sys.path if p])
    return env


def test_without_torch_grades_against_our_reference_kernels_and_says_so(tmp_path):
    import subprocess
    import sys

    env = _no_torch_env(tmp_path)
    script = ("import json, sys, convforge.grade as G\n"
              "out = {}\n"
              "for f, op, names in [('good_conv.cpp', 'conv2d', ['1x1', 'groups', 'dilation']),\n"
              "                     ('wrong_conv.cpp', 'conv2d', ['1x1', 'dilation']),\n"
              "                     ('good_pool.cpp', 'max_pool2d', ['nan_wins', 'overlapping_s1']),\n"
              "                     ('good_gemm.cpp', 'gemm', ['leading_dims', 'linear_lenet_f6'])]:\n"
              f"    r = G.grade({str(STUDENT)!r} + '/' + f, op, timing=False, n_random=0, case_names=names)\n"
              "    out[f + op] = [r['status'], r['reference'], r['reference_note'], G.format_report(r)]\n"
              "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["good_conv.cppconv2d"][0] == "passed", out["good_conv.cppconv2d"][3]
    assert out["wrong_conv.cppconv2d"][0] == "failed"  # the reference is real, not the student's own output
    assert out["good_pool.cppmax_pool2d"][0] == "passed", out["good_pool.cppmax_pool2d"][3]
    assert out["good_gemm.cppgemm"][0] == "passed", out["good_gemm.cppgemm"][3]
    for status, source, note, report in out.values():
        assert source == "convforge" and 'pip install "convforge[grade]"' in note and note in report


def test_without_torch_asking_for_it_is_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "convforge", "grade", str(STUDENT / "good_gemm.cpp"), "--op", "gemm",
                           "--reference", "torch"], env=_no_torch_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and 'pip install "convforge[grade]"' in proc.stderr


def test_grade_extra_is_declared():
    tomllib = pytest.importorskip("tomllib")
    meta = tomllib.loads((HERE.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(d.startswith("torch==") for d in meta["grade"])  # pinned, as in the test extra
    assert "convforge[grade]" in (HERE.parent / "README.md").read_text()
