"""convforge: hand-written CPU and CUDA kernels for conv2d, pooling and GEMM, checked against PyTorch.

The public API is Python: ``convforge.functional`` (mirrors ``torch.nn.functional``), ``convforge.nn``,
``convforge.models``, ``convforge.data``. The compiled cores (``convforge._C`` and, when built with
nvcc, ``convforge._cuda``) are private.
"""
# Lets a developer build (tools/devbuild.sh: PYTHONPATH=python:build/dev-NAME) supply the compiled
# modules from another folder; a no-op for an installed package.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from . import _C
from .functional import (  # noqa: F401  (re-exported: the names a user reaches for first)
    avg_pool2d,
    conv2d,
    conv2d_backward,
    conv_output_size,
    cross_entropy,
    gemm,
    linear,
    matmul,
    max_pool2d,
    relu,
    set_num_threads,
    get_num_threads,
    set_flush_denormal,
    get_flush_denormal,
)
from . import functional  # noqa: F401
from .kernels import KernelCompileError, load_kernel  # noqa: F401  (student kernels: convforge/kernels.py)
from .machine import machine_info, set_cpu_config  # noqa: F401  (the machine and its GEMM config)
from .tuning import autotune_enabled, set_autotune  # noqa: F401  (measured algo choice)

__version__ = _C._build_info()["version"]


def build_info() -> dict:
    """What was built and what it runs on (``python -m convforge info`` prints it).

    Returns
    -------
    dict
        ``version``; ``arch`` (``x86_64``, ``aarch64``); ``compiler``; ``openmp`` (the ``_OPENMP``
        date) and ``openmp_runtime`` (the library the OpenMP calls resolve to: libgomp for gcc,
        libomp for clang); ``simd_supported`` and ``simd_in_use`` (``scalar``, ``avx2``,
        ``avx512``, ``neon``); ``sve`` on AArch64; ``omp_max_threads``, ``num_threads``, ``flush_denormal`` (whether the CPU kernels flush
        subnormals to zero, ``set_flush_denormal``),
        ``build_type``; ``cuda_compiled``, ``cuda_available`` and ``gpus``.
    """
    info = dict(_C._build_info())
    info["num_threads"] = _C.get_num_threads()
    info["flush_denormal"] = _C.get_flush_denormal()
    from . import cuda

    info["cuda_compiled"] = cuda.is_compiled()
    info["cuda_available"] = cuda.is_available()
    try:
        info["gpus"] = [
            {"name": cuda.get_device_name(i), "capability": cuda.get_device_capability(i)}
            for i in range(cuda.device_count())
        ]
    except RuntimeError:  # a child forked from a process that had used CUDA: it cannot ask the GPU
        info["gpus"] = "unknown (CUDA cannot be used after fork)"
    return info


def __getattr__(name):
    # Device arrays live in the optional CUDA module; import it only when asked for.
    if name in ("to_device", "from_dlpack", "DeviceArray"):
        from . import cuda

        return getattr(cuda, name)
    raise AttributeError(f"module 'convforge' has no attribute {name!r}")
