"""The machine description (csrc/cpu/machine.cpp), the per-microarchitecture GEMM configs
(csrc/cpu/gemm/gemm_config.cpp) and, under each config this CPU can run, every GEMM and conv2d
algo against PyTorch (configs the CPU lacks the ISA for skip, as the SIMD-level tests do)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import convforge
import convforge.functional as F
from convforge import _C, machine
from conftest import BWD_TOL, FWD_TOL, randn, rel_error
from test_conv2d import BWD_ALGOS, FWD_ALGOS, _case_data

CONFIGS = [c["name"] for c in machine.cpu_configs()]


def test_description_is_plausible():
    d = machine.description()
    assert d["arch"] and d["vendor"] and d["logical_cpus"] >= 1
    assert 4 << 10 <= d["l1d_bytes"] <= 1 << 20
    assert d["l1d_bytes"] < d["l2_bytes"] <= 64 << 20
    assert d["l3_bytes"] == 0 or d["l3_bytes"] >= d["l2_bytes"]
    assert d["simd_supported"] == _C.simd_level_supported()
    assert d["cache_source"]


@pytest.mark.skipif(not os.path.exists("/sys/devices/system/cpu/cpu0/cache/index0/size"),
                    reason="no sysfs cache description")
def test_caches_agree_with_sysfs():
    """CPUID's leaf 4 / 0x8000001D and Linux's sysfs describe the same caches."""
    base = "/sys/devices/system/cpu/cpu0/cache"
    sysfs = {}
    for idx in sorted(os.listdir(base)):
        if not idx.startswith("index"):
            continue
        read = lambda f: open(os.path.join(base, idx, f)).read().strip()  # noqa: E731
        if read("type") != "Instruction":
            size = read("size")
            sysfs[int(read("level"))] = int(size.rstrip("KM")) << (20 if size.endswith("M") else 10)
    d = machine.description()
    for level, key in ((1, "l1d_bytes"), (2, "l2_bytes"), (3, "l3_bytes")):
        if level in sysfs:
            assert d[key] == sysfs[level], (key, d[key], sysfs[level], d["cache_source"])


def test_measured_peak_and_bandwidth():
    p1 = machine.fma_peak(1)
    assert p1["gflops"] > 0.5 and p1["gflops"] == max(p1["gflops_256"], p1["gflops_512"])
    assert machine.fma_peak(1) == p1  # measured once, then remembered
    if _C.simd_level_supported() == "avx512":
        assert p1["fma512_units"] in (1, 2)
    else:
        assert p1["fma512_units"] == 0 and p1["gflops_512"] == 0
    assert machine.triad_bandwidth(1) > 0.1
    with pytest.raises(ValueError, match="threads must be >= 1"):
        _C.measure_fma_peak(0)


def test_config_table_blocks_come_from_the_caches():
    d = machine.description()
    in_use = [c for c in machine.cpu_configs() if c["in_use"]]
    assert len(in_use) == 1 and in_use[0]["isa"] == _C.simd_level()
    assert machine.cpu_config()["name"] == in_use[0]["name"]
    for c in machine.cpu_configs():
        assert c["mc"] % c["mr"] == 0 and c["nc"] % c["nr"] == 0 and c["kc"] % 16 == 0
        # one B micro-panel fits L1, one packed A block fits L2
        assert 4 * c["kc"] * c["nr"] <= d["l1d_bytes"] or c["kc"] == 64
        assert 4 * c["mc"] * c["kc"] <= d["l2_bytes"] or c["mc"] == 4 * c["mr"]
    # the machine's own choice per level runs here
    assert all(c["available"] for c in machine.cpu_configs() if c["isa"] in ("scalar", _C.simd_level_supported()))


def test_bad_config_names():
    with pytest.raises(ValueError, match="unknown name 'nope'.*scalar"):
        machine.set_cpu_config("nope")
    with pytest.raises(TypeError, match="must be a str"):
        machine.set_cpu_config(3)
    for c in machine.cpu_configs():
        if not c["available"]:
            with pytest.raises(ValueError, match=f"needs {c['isa']}, but this CPU supports"):
                machine.set_cpu_config(c["name"])


def test_env_var_forces_a_config_at_start_up():
    """CONVFORGE_CPU_CONFIG=name is read at import; an unsupported name is ignored."""
    code = "from convforge import _C; print(_C.cpu_config()['name'], _C.simd_level())"
    env = dict(os.environ, CONVFORGE_CPU_CONFIG="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["scalar", "scalar"]
    env["CONVFORGE_CPU_CONFIG"] = "no-such-config"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == machine.cpu_config()["name"]


@pytest.fixture(params=CONFIGS)
def cpu_config(request):
    """Runs a test once under each GEMM config; those the CPU cannot run skip."""
    c = next(c for c in machine.cpu_configs() if c["name"] == request.param)
    if not c["available"]:
        pytest.skip(f"config {c['name']} needs {c['isa']}; this CPU supports {_C.simd_level_supported()}")
    level = _C.simd_level()
    assert machine.set_cpu_config(c["name"]) == c["name"]
    assert _C.simd_level() == c["isa"]
    yield c
    machine.set_cpu_config("default")
    _C._set_simd_level(level)


GEMM_SIZES = [(1, 1, 1), (7, 33, 100), (100, 257, 7), (65, 47, 600), (129, 257, 65), (300, 40, 1100)]


@pytest.mark.parametrize("algo", [a["name"] for a in F.algos("gemm")])
def test_gemm_under_each_config(rng, cpu_config, algo):
    for m, n, k in GEMM_SIZES:
        for trans_a, trans_b in ((False, False), (True, True)):
            a = randn(rng, *((k, m) if trans_a else (m, k)))
            b = randn(rng, *((n, k) if trans_b else (k, n)))
            c = randn(rng, m, n)
            ref = 1.5 * ((a.T if trans_a else a).astype(np.float64) @ (b.T if trans_b else b)) + 0.5 * c
            out = F.gemm(a, b, c, alpha=1.5, beta=0.5, trans_a=trans_a, trans_b=trans_b, algo=algo)
            assert rel_error(out, ref) <= FWD_TOL, (m, n, k, trans_a, trans_b)


CONV_CASES = ["1x1", "stride_gt_kernel", "asym_stride_padding", "dilation", "groups", "depthwise",
              "lenet_c1", "lenet_c3", "vgg_conv1_2", "vgg_conv3_2"]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("algo", [a for a in FWD_ALGOS if a != "reference"])
def test_conv_forward_under_each_config(cpu_config, algo):
    for name in CONV_CASES:
        kw, x, w, b, ref = _case_data(name)[:5]
        assert rel_error(F.conv2d(x, w, b, algo=algo, **kw), ref) <= FWD_TOL, name


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("algo", [a for a in BWD_ALGOS if a != "reference"])
def test_conv_backward_under_each_config(cpu_config, algo):
    for name in CONV_CASES:
        kw, x, w, _, _, _, gy, gx_ref, gw_ref, gb_ref = _case_data(name)
        gx, gw, gb = F.conv2d_backward(gy, x, w, algo=algo, **kw)
        for out, ref in ((gx, gx_ref), (gw, gw_ref), (gb, gb_ref)):
            assert rel_error(out, ref) <= BWD_TOL, name


def test_info_prints_the_machine(capsys):
    from convforge.__main__ import main

    assert main(["info", "--no-measure"]) == 0
    out = capsys.readouterr().out
    for key in ("vendor", "uarch", "l1d_bytes", "l2_bytes", "cache_source", "cpu_config", "blocks"):
        assert key in out
    info = convforge.machine_info(measure=True)
    assert info["peak_gflops_per_core"] > 0 and info["triad_gbs"] > 0 and info["threads"] >= 1
