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
