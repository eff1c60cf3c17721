import subprocess
import sys

import convforge


def test_build_info_reports_the_build():
    info = convforge.build_info()
    assert info["version"] == convforge.__version__
    assert info["simd_in_use"] in ("scalar", "avx2", "avx512")
    assert info["num_threads"] >= 1
    assert isinstance(info["cuda_compiled"], bool)
    assert info["cuda_available"] == (len(info["gpus"]) > 0)


def test_info_command_runs():
    out = subprocess.run([sys.executable, "-m", "convforge", "info"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "simd" in out.stdout and convforge.__version__ in out.stdout
