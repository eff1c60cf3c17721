"""The machine the CPU kernels run on: what was detected, what was chosen for it, what it measures.

``convforge.machine_info()`` and ``convforge info`` report it; ``benchmarks/bench_cpu.py`` takes its
"% of peak" from :func:`fma_peak`. Detection (CPUID / sysfs, in ``csrc/cpu/machine.cpp``) is
instant; the peak and the bandwidth are measured on first request only (tens of milliseconds and
about a second) and then remembered for the process.
"""
from __future__ import annotations

from . import _C


def description() -> dict:
    """The detected CPU: no measurement.

    Returns
    -------
    dict
        ``arch``, ``vendor``, ``model_name``, ``family``, ``model`` (x86 display values; -1 where
        unknown), ``uarch`` (``"zen3"``, ``"sapphire-rapids"``, ... or ``"unknown"``),
        ``logical_cpus``, ``simd_supported``, ``l1d_bytes``, ``l2_bytes``, ``l3_bytes`` (as one core
        sees them), ``l2_shared_by``, ``l3_shared_by`` (logical CPUs) and ``cache_source``.
    """
    return dict(_C.machine())


def cpu_config() -> dict:
    """The GEMM configuration in use (``csrc/cpu/gemm/gemm_config.cpp``).

    Returns
    -------
    dict
        ``name``, ``isa``, ``description``, micro-tile ``mr`` x ``nr`` and cache blocks ``mc``,
        ``kc``, ``nc`` (derived from the cache sizes), ``available``, ``in_use``.
    """
    return dict(_C.cpu_config())


def cpu_configs() -> list:
    """Every configuration of the table, with its blocks on this machine and whether the CPU can run it."""
    return [dict(c) for c in _C.cpu_configs()]


def set_cpu_config(name: str) -> str:
    """Force a GEMM configuration (as ``CONVFORGE_CPU_CONFIG=name`` does at start-up).

    Parameters
    ----------
    name : str
        An entry of :func:`cpu_configs`, or ``"default"`` for the machine's own choice. Forcing an
        entry also lowers the SIMD level to the entry's ISA, so every kernel runs that ISA.

    Returns
    -------
    str
        The name of the configuration now in use.

    Raises
    ------
    ValueError
        For an unknown name, or an entry whose ISA this CPU does not support.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_cpu_config: name must be a str, got {type(name).__name__}")
    return _C._set_cpu_config(name)


def fma_peak(threads: int | None = None) -> dict:
    """Measured fp32 FMA peak (a loop of independent vector FMAs per ISA, ~50 ms, then cached).

    Parameters
    ----------
    threads : int, optional
        Threads running the loop at once (default: ``convforge.get_num_threads()``).

    Returns
    -------
    dict
        ``gflops`` (the best over the supported ISAs, all threads together), ``gflops_256``,
        ``gflops_512`` (0 without AVX-512) and ``fma512_units`` (512-bit FMAs per cycle from their
        ratio; 0 without AVX-512). GFLOP/s count a multiply-add as two operations.
    """
    return dict(_C.measure_fma_peak(int(threads or _C.get_num_threads())))


def triad_bandwidth(threads: int | None = None) -> float:
    """Measured STREAM-triad bandwidth ``a = b + s*c`` in GB/s (12 bytes per element; ~1 s, then cached)."""
    return float(_C.measure_triad_bandwidth(int(threads or _C.get_num_threads())))


def machine_info(measure: bool = True) -> dict:
    """Description, configuration in use and (with ``measure``) the measured peak and bandwidth.

    Parameters
    ----------
    measure : bool
        Also measure the FMA peak (one thread and the threads in use) and the triad bandwidth.

    Returns
    -------
    dict
        :func:`description`'s keys, ``cpu_config`` (:func:`cpu_config`'s name), ``blocks``
        (``"MRxNR, MC/KC/NC"``), and with ``measure``: ``peak_gflops_per_core``,
        ``peak_gflops_threads``, ``threads``, ``fma512_units``, ``triad_gbs``.
    """
    info = description()
    c = cpu_config()
    info["cpu_config"] = c["name"]
    info["blocks"] = f"{c['mr']}x{c['nr']} micro-tile, MC {c['mc']}, KC {c['kc']}, NC {c['nc']}"
    if measure:
        threads = _C.get_num_threads()
        one = fma_peak(1)
        info["peak_gflops_per_core"] = round(one["gflops"], 1)
        info["threads"] = threads
        info["peak_gflops_threads"] = round(fma_peak(threads)["gflops"], 1)
        info["fma512_units"] = one["fma512_units"]
        info["triad_gbs"] = round(triad_bandwidth(threads), 1)
    return info
