import platform
import subprocess
import sys

import convforge


def test_build_info_reports_the_build():
    info = convforge.build_info()
    assert info["version"] == convforge.__version__
    assert info["simd_in_use"] in ("scalar", "avx2", "avx512", "neon")
    assert info["simd_in_use"] in convforge._C._simd_levels()
    assert info["num_threads"] >= 1
    assert isinstance(info["cuda_compiled"], bool)
    assert info["cuda_available"] == (len(info["gpus"]) > 0)


def test_build_info_reports_architecture_compiler_and_openmp_runtime():
    info = convforge.build_info()
    machine = platform.machine().lower()
    assert info["arch"] == {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    assert info["simd_supported"] in convforge._C._simd_levels()
    # The runtime that OpenMP calls resolve to in this process: gcc's libgomp or LLVM's libomp.
    runtime = info["openmp_runtime"]
    if info["compiler"].startswith("GNU"):
        assert "gomp" in runtime, runtime
    elif "Clang" in info["compiler"]:
        assert "omp" in runtime and "gomp" not in runtime, runtime
    assert int(info["openmp"]) >= 201107  # OpenMP 3.1 or newer


def test_info_command_runs():
    out = subprocess.run([sys.executable, "-m", "convforge", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "simd" in out.stdout and convforge.__version__ in out.stdout
