"""The kernel registry, and student kernels compiled and loaded at run time.

``convforge.kernels.list()`` (``convforge kernels`` on the command line) lists every op's variants on
each device: ours, from ``convforge.functional.algos`` (kind reference, teaching or production), and
the student kernels loaded in this process (kind student).

A student kernel is one ``.cpp`` (CPU) or ``.cu`` (CUDA) file that defines the ``extern "C"``
functions of ``convforge/student.h`` (``convforge.kernels.include_dirs()`` finds it)::

    k = convforge.load_kernel("my_conv.cpp", op="conv2d")      # compiles, caches, loads, registers
    y = convforge.functional.conv2d(x, w, b, padding=1, algo="my_conv")
    layer.algo = "my_conv"                                      # nn.Conv2d layers, hence training

Builds are cached by content hash (source, headers, compiler command) under ``$CONVFORGE_CACHE`` or
``~/.cache/convforge/kernels``. A file that does not compile raises :class:`KernelCompileError`,
whose message is the compiler's own output (file:line: error: ...).
"""
from __future__ import annotations

import builtins
import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["list", "load_kernel", "compile_kernel", "unload_kernel", "student_kernels", "include_dirs",
           "KernelCompileError", "StudentKernel", "OPS", "add_subcommands"]

# The ops a student file can implement: the functions it must define, and the ones it may define.
OPS = {
    "conv2d": (("convforge_conv2d_forward",),
               ("convforge_conv2d_backward_data", "convforge_conv2d_backward_weight")),
    "gemm": (("convforge_gemm",), ()),
    "max_pool2d": (("convforge_max_pool2d_forward",), ("convforge_max_pool2d_backward",)),
    "avg_pool2d": (("convforge_avg_pool2d_forward",), ("convforge_avg_pool2d_backward",)),
}
# Our backend's op names for algos(), per student op.
_BACKEND_OP = {"conv2d": ["conv2d_forward", "conv2d_backward"], "gemm": ["gemm"],
               "max_pool2d": ["pool2d"], "avg_pool2d": ["pool2d"]}
_RESERVED = {"auto", "reference"}

_PKG = Path(__file__).resolve().parent


class KernelCompileError(RuntimeError):
    """The compiler rejected a student file; str(e) and e.output are its messages, verbatim."""

    def __init__(self, path, command, output):
        self.path, self.command, self.output = str(path), command, output
        super().__init__(f"{path} does not compile:\n{output.rstrip()}\n(command: {shlex.join(command)})")


# ---------------------------------------------------------------------------------------------
# Compiling
# ---------------------------------------------------------------------------------------------

def include_dirs() -> list:
    """-I folders for student files: convforge/student.h and common/geometry.h (installed or in a checkout)."""
    dirs = [_PKG / "include"]
    if not (_PKG / "include" / "common" / "geometry.h").exists():  # a source checkout: csrc/common/geometry.h
        for root in (_PKG.parents[1] / "csrc",):
            if (root / "common" / "geometry.h").exists():
                dirs.append(root)
    return [str(d) for d in dirs]


def cache_dir() -> Path:
    d = os.environ.get("CONVFORGE_CACHE")
    return Path(d) / "kernels" if d else Path.home() / ".cache" / "convforge" / "kernels"


def _cpu_isa_flags() -> list:
    """The ISA flags of the package's per-ISA translation units, for the best level this CPU runs."""
    try:
        from . import _C

        level = _C.simd_level_supported()
    except Exception:
        level = "scalar"
    if level == "avx512":
        return ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma", "-mf16c"]
    if level == "avx2":
        return ["-mavx2", "-mfma", "-mf16c"]
    return []


def _cuda_arch_flags() -> list:
    """The visible GPU's architecture; without one, the package's (or sm_80), for a compile-only build."""
    from . import cuda

    if cuda.is_available():
        major, minor = cuda.get_device_capability(0)
        return [f"-arch=sm_{major}{minor}"]
    archs = str(cuda.build_info().get("architectures", "")).replace(";", ",")
    codes = sorted({a.strip()[:2] for a in archs.split(",") if a.strip()[:2].isdigit()})
    if not codes:
        codes = ["80"]
    return [f"-gencode=arch=compute_{c},code=sm_{c}" for c in codes]


def compile_command(path, output) -> list:
    """The compiler command for a student file (g++ for .cpp, nvcc for .cu); override with
    $CONVFORGE_CXX / $CONVFORGE_NVCC, add flags with $CONVFORGE_CXXFLAGS / $CONVFORGE_NVCCFLAGS."""
    path = Path(path)
    inc = [f"-I{d}" for d in include_dirs()]
    if path.suffix == ".cu":
        nvcc = os.environ.get("CONVFORGE_NVCC") or shutil.which("nvcc") or "nvcc"
        return ([nvcc, "-O3", "-std=c++17", "-shared", "-Xcompiler", "-fPIC,-fopenmp", "-lineinfo",
                 "--expt-relaxed-constexpr", *_cuda_arch_flags(), *inc,
                 *shlex.split(os.environ.get("CONVFORGE_NVCCFLAGS", "")), str(path), "-o", str(output)])
    cxx = os.environ.get("CONVFORGE_CXX") or os.environ.get("CXX") or "g++"
    return ([cxx, "-O3", "-std=c++17", "-fopenmp", "-shared", "-fPIC", "-Wall", "-fno-math-errno",
             *_cpu_isa_flags(), *inc, *shlex.split(os.environ.get("CONVFORGE_CXXFLAGS", "")),
             str(path), "-o", str(output)])


@functools.lru_cache(maxsize=None)
def _compiler_version(exe: str) -> str:
    try:
        return subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def compile_kernel(path) -> tuple:
    """Compiles a student file (or finds it in the cache): (shared library path, compiler output, cached?)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"load_kernel: no such file {str(path)!r}")
    if path.suffix not in (".cpp", ".cc", ".cxx", ".cu"):
        raise ValueError(f"load_kernel: {path} must be a .cpp (CPU) or .cu (CUDA) file")
    command = compile_command(path, "OUT")
    h = hashlib.sha256()
    h.update(path.read_bytes())
    for d in include_dirs():  # the headers of the interface (not the rest of a checkout's csrc/)
        for hdr in (Path(d) / "convforge" / "student.h", Path(d) / "common" / "geometry.h"):
            if hdr.exists():
                h.update(hdr.read_bytes())
    h.update(" ".join(c for c in command if c != str(path)).encode())
    h.update(_compiler_version(command[0]).encode())
    key = h.hexdigest()[:24]
    out_dir = cache_dir()
    out = out_dir / f"{path.stem}-{key}.so"
    log = out.with_suffix(".log")
    if out.exists():
        return str(out), (log.read_text() if log.exists() else ""), True
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
    os.close(fd)
    command = compile_command(path, tmp)
    try:
        proc = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        os.unlink(tmp)
        raise KernelCompileError(path, command, f"compiler {command[0]!r} not found") from None
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        os.unlink(tmp)
        raise KernelCompileError(path, command, text)
    log.write_text(text)
    os.replace(tmp, out)  # atomic: parallel builds of the same file are harmless
    return str(out), text, False


# ---------------------------------------------------------------------------------------------
# Calling through ctypes
# ---------------------------------------------------------------------------------------------

_i64 = ctypes.c_int64
_CONV_FIELDS = ("N C H W K R S groups stride_h stride_w pad_top pad_bottom pad_left pad_right "
                "dilation_h dilation_w P Q").split()


class ConvGeometry(ctypes.Structure):
    """common/geometry.h's Conv2dGeometry (18 int64; student.h asserts the layout)."""
    _fields_ = [(n, _i64) for n in _CONV_FIELDS]


class PoolGeometry(ctypes.Structure):
    """common/geometry.h's Pool2dGeometry."""
    _fields_ = ([(n, _i64) for n in "N C H W R S stride_h stride_w pad_h pad_w dilation_h dilation_w".split()]
                + [("ceil_mode", ctypes.c_bool), ("P", _i64), ("Q", _i64)])


def _to_struct(cls, g):
    return cls(**{name: getattr(g, name) for name, _ in cls._fields_})


_P = ctypes.c_void_p
_SIGNATURES = {
    "convforge_conv2d_forward": [_P, _P, _P, _P, _P],
    "convforge_conv2d_backward_data": [_P, _P, _P, _P],
    "convforge_conv2d_backward_weight": [_P, _P, _P, _P, _P],
    "convforge_gemm": [_i64, _i64, _i64, ctypes.c_float, _P, _i64, _P, _i64, ctypes.c_float, _P, _i64],
    "convforge_max_pool2d_forward": [_P, _P, _P, _P],
    "convforge_avg_pool2d_forward": [_P, ctypes.c_int, _P, _P],
    "convforge_max_pool2d_backward": [_P, _P, _P, _P],
    "convforge_avg_pool2d_backward": [_P, ctypes.c_int, _P, _P],
}


@dataclass
class StudentKernel:
    """A loaded student file: call its functions with numpy arrays (CPU) or device arrays (CUDA).

    It pickles as its name, op, source path and cached build: unpickling re-loads that build (and
    registers it as ``algo=name`` if it was registered here), so a model using it can cross into
    a spawned process; where the build does not exist (another machine, a cleared cache),
    unpickling raises a RuntimeError saying to call ``load_kernel`` in that process first.
    """
    name: str
    op: str
    path: str
    device: str                      # "cpu" for .cpp, "cuda" for .cu
    library: str                     # the cached shared library
    compiler_output: str = ""
    functions: dict = field(default_factory=dict, repr=False)

    def __reduce__(self):
        registered = _registry().get(self.name) is self
        return _restore_kernel, (self.name, self.op, self.path, self.library, self.compiler_output, registered)

    @property
    def provides(self) -> builtins.list:
        return sorted(self.functions)

    def has(self, fn: str) -> bool:
        return fn in self.functions

    # -- buffers ----------------------------------------------------------------------------
    def _check_device(self, *arrays):
        on_gpu = [a for a in arrays if a is not None and not isinstance(a, np.ndarray)]
        if self.device == "cpu" and on_gpu:
            raise ValueError(f"algo={self.name!r} is a CPU kernel ({self.path}); its inputs must be numpy arrays")
        if self.device == "cuda" and len(on_gpu) != len([a for a in arrays if a is not None]):
            raise ValueError(f"algo={self.name!r} is a CUDA kernel ({self.path}); its inputs must be device arrays")

    def _empty(self, shape, like, dtype=np.float32):
        if self.device == "cpu":
            return np.empty(shape, dtype=dtype)
        from . import cuda

        return cuda.empty(shape, dtype, device=getattr(like, "device_index", 0))

    def _ptr(self, a):
        if a is None:
            return None
        if isinstance(a, np.ndarray):
            return a.ctypes.data
        return int(a.data_ptr)

    def _call(self, fn, *args, like=None):
        f = self.functions.get(fn)
        if f is None:
            raise NotImplementedError(f"{self.path} does not define {fn} (see convforge/student.h)")
        if self.device == "cuda":
            from . import cuda

            args = args + (cuda._module()._stream_handle(getattr(like, "device_index", 0)),)
        f(*args)

    # -- ops (inputs already checked by convforge.functional) -------------------------------
    def conv2d_forward(self, x, w, bias, g, y=None):
        self._check_device(x, w, bias)
        y = self._empty((g.N, g.K, g.P, g.Q), x) if y is None else y
        gs = _to_struct(ConvGeometry, g)
        self._call("convforge_conv2d_forward", ctypes.byref(gs), self._ptr(x), self._ptr(w), self._ptr(bias),
                   self._ptr(y), like=x)
        return y

    def conv2d_backward_data(self, dy, w, g, dx=None):
        self._check_device(dy, w)
        dx = self._empty((g.N, g.C, g.H, g.W), dy) if dx is None else dx
        gs = _to_struct(ConvGeometry, g)
        self._call("convforge_conv2d_backward_data", ctypes.byref(gs), self._ptr(dy), self._ptr(w), self._ptr(dx),
                   like=dy)
        return dx

    def conv2d_backward_weight(self, dy, x, g, need_db=True, dw=None, db=None):
        self._check_device(dy, x)
        dw = self._empty((g.K, g.C // g.groups, g.R, g.S), dy) if dw is None else dw
        if need_db and db is None:
            db = self._empty((g.K,), dy)
        gs = _to_struct(ConvGeometry, g)
        self._call("convforge_conv2d_backward_weight", ctypes.byref(gs), self._ptr(dy), self._ptr(x),
                   self._ptr(dw), self._ptr(db if need_db else None), like=dy)
        return dw, (db if need_db else None)

    @staticmethod
    def _leading_dim(a, name):
        """The row stride in elements of a 2-D operand whose rows are contiguous (a sub-matrix view of a
        wider buffer has ld > its row length); None when its rows are not contiguous."""
        if not isinstance(a, np.ndarray):  # device arrays are contiguous
            return int(a.shape[1])
        item = a.itemsize
        rows, cols = a.shape
        if (cols <= 1 or a.strides[1] == item) and (rows <= 1 or (a.strides[0] % item == 0
                                                                 and a.strides[0] >= cols * item)):
            return int(a.strides[0] // item) if rows > 1 else int(cols)
        return None

    def gemm(self, a, b, c=None, alpha=1.0, beta=0.0, out=None):
        """alpha * a @ b + beta * c, row-major, no transposes (the caller copies transposed operands).

        Operands may be sub-matrix views of wider buffers (rows contiguous, row stride >= row length):
        their row strides are passed as lda, ldb, ldc. out, when given, is written in place (and read
        when beta != 0); else a new array (a copy of c when beta != 0)."""
        self._check_device(a, b, c)
        M, K = a.shape
        N = b.shape[1]
        lda, ldb = self._leading_dim(a, "a"), self._leading_dim(b, "b")
        if lda is None:
            a, lda = np.ascontiguousarray(a), K
        if ldb is None:
            b, ldb = np.ascontiguousarray(b), N
        if out is None:
            if c is not None and beta != 0.0:
                out = self._empty((M, N), a) if self.device == "cpu" else c.copy()
                if self.device == "cpu":
                    out[...] = c
            else:
                out = self._empty((M, N), a)
                beta = 0.0
        ldc = self._leading_dim(out, "out")
        if ldc is None:
            raise ValueError(f"algo={self.name!r}: gemm's output must have contiguous rows, got strides {out.strides}")
        self._call("convforge_gemm", M, N, K, float(alpha), self._ptr(a), lda, self._ptr(b), ldb, float(beta),
                   self._ptr(out), ldc, like=a)
        return out

    def max_pool2d_forward(self, x, g, want_indices, y=None, indices=None):
        self._check_device(x)
        y = self._empty((g.N, g.C, g.P, g.Q), x) if y is None else y
        if want_indices and indices is None:
            indices = self._empty((g.N, g.C, g.P, g.Q), x, np.int64)
        gs = _to_struct(PoolGeometry, g)
        self._call("convforge_max_pool2d_forward", ctypes.byref(gs), self._ptr(x), self._ptr(y),
                   self._ptr(indices if want_indices else None), like=x)
        return y, (indices if want_indices else None)

    def max_pool2d_backward(self, dy, indices, g, dx=None):
        self._check_device(dy, indices)
        dx = self._empty((g.N, g.C, g.H, g.W), dy) if dx is None else dx
        gs = _to_struct(PoolGeometry, g)
        self._call("convforge_max_pool2d_backward", ctypes.byref(gs), self._ptr(dy), self._ptr(indices),
                   self._ptr(dx), like=dy)
        return dx

    def avg_pool2d_backward(self, dy, g, count_include_pad, dx=None):
        self._check_device(dy)
        dx = self._empty((g.N, g.C, g.H, g.W), dy) if dx is None else dx
        gs = _to_struct(PoolGeometry, g)
        self._call("convforge_avg_pool2d_backward", ctypes.byref(gs), int(bool(count_include_pad)), self._ptr(dy),
                   self._ptr(dx), like=dy)
        return dx

    def avg_pool2d_forward(self, x, g, count_include_pad, y=None):
        self._check_device(x)
        y = self._empty((g.N, g.C, g.P, g.Q), x) if y is None else y
        gs = _to_struct(PoolGeometry, g)
        self._call("convforge_avg_pool2d_forward", ctypes.byref(gs), int(bool(count_include_pad)), self._ptr(x),
                   self._ptr(y), like=x)
        return y


def _open_library(library: str, device: str) -> tuple:
    lib = ctypes.CDLL(library, mode=getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 0))
    fns = {}
    for fn, argtypes in _SIGNATURES.items():
        try:
            f = getattr(lib, fn)
        except AttributeError:
            continue
        f.argtypes = argtypes + ([ctypes.c_void_p] if device == "cuda" else [])
        f.restype = None
        fns[fn] = f
    return lib, fns


def _registry() -> dict:
    from . import functional

    return functional._student_kernels


def open_kernel(path, op: str = "conv2d", name: str | None = None, library: str | None = None) -> StudentKernel:
    """Compiles (unless library is given) and loads a student file without registering it."""
    if op not in OPS:
        raise ValueError(f"load_kernel: op must be one of {sorted(OPS)}, got {op!r}")
    path = Path(path)
    name = name or path.stem
    if not name.isidentifier() or name in _RESERVED:
        raise ValueError(f"load_kernel: name {name!r} must be an identifier other than {sorted(_RESERVED)} "
                         f"(pass name=...)")
    out = ""
    if library is None:
        library, out, _ = compile_kernel(path)
    device = "cuda" if path.suffix == ".cu" else "cpu"
    _, fns = _open_library(library, device)
    required, optional = OPS[op]
    missing = [f for f in required if f not in fns]
    if missing:
        raise ValueError(f"load_kernel: {path} compiles but does not define {', '.join(missing)} for op={op!r}; "
                         f"check its signature against convforge/student.h (in {include_dirs()[0]})")
    mine = {f: fns[f] for f in required + optional if f in fns}
    return StudentKernel(name=name, op=op, path=str(path), device=device, library=library,
                         compiler_output=out, functions=mine)


def our_algo_names(op: str) -> dict:
    """The names of our kernels for a student op, which a student kernel may not take.

    Parameters
    ----------
    op : {"conv2d", "gemm", "max_pool2d", "avg_pool2d"}

    Returns
    -------
    dict
        {algo name: "CPU", "CUDA" or "CPU and CUDA"}; the CUDA names are known whenever convforge
        was built with CUDA, GPU or not.
    """
    from . import functional

    found = {}
    for backend_op in _BACKEND_OP[op]:
        for dev, lister in (("CPU", lambda o: functional.algos(o, "cpu")), ("CUDA", _cuda_algos)):
            try:
                names = {a["name"] for a in lister(backend_op)}
            except Exception:  # no CUDA module in this build
                continue
            for n in names:
                found[n] = dev if found.get(n, dev) == dev else "CPU and CUDA"
    return found


def load_kernel(path, op: str = "conv2d", name: str | None = None) -> StudentKernel:
    """Compiles a student .cpp/.cu file (cached by content hash), loads it and registers it as
    ``algo=name`` (default: the file's stem) for op in convforge.functional and thus the nn layers.
    Raises KernelCompileError with the compiler's messages when it does not compile."""
    k = open_kernel(path, op, name)
    ours = our_algo_names(op)
    if k.name in ours:
        raise ValueError(f"load_kernel: {k.name!r} is the name of one of our {ours[k.name]} kernels for op={op!r}; "
                         f"pass name=... (taken: {', '.join(sorted(ours))})")
    _registry()[k.name] = k
    return k


def _restore_kernel(name, op, path, library, compiler_output, registered) -> StudentKernel:
    """Unpickles a StudentKernel: the one registered under name if it is the same build, else its
    cached build loaded (and registered if it was), else a RuntimeError saying to load it here."""
    reg = _registry()
    existing = reg.get(name) if registered else None
    if existing is not None:
        if existing.library == library and existing.op == op:
            return existing
        raise RuntimeError(
            f"cannot unpickle student kernel {name!r} (op={op!r}, built from {path}): this process has a different "
            f"kernel registered under that name (from {existing.path}, op={existing.op!r}); "
            f"call convforge.kernels.unload_kernel({name!r}) first")
    if not Path(library).is_file():
        raise RuntimeError(
            f"cannot unpickle student kernel {name!r} (op={op!r}, built from {path}): its build {library} does "
            f"not exist in this process's file system (another machine, or a cleared cache); load it here first "
            f"with convforge.load_kernel({path!r}, op={op!r}, name={name!r})")
    k = open_kernel(path, op, name, library=library)
    k.compiler_output = compiler_output
    if registered:
        reg[name] = k
    return k


def unload_kernel(name: str) -> None:
    """Removes a student kernel from the registry (its library stays mapped)."""
    _registry().pop(name, None)


def student_kernels() -> dict:
    return dict(_registry())


# ---------------------------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------------------------

def _devices():
    from . import cuda

    return ["cpu"] + (["cuda"] if cuda.is_compiled() else [])


def list(op: str | None = None, device: str | None = None) -> builtins.list:
    """Every kernel variant: dicts {op, device, name, kind, description, source}, ours then students'."""
    from . import functional

    rows = []
    ops = ["conv2d_forward", "conv2d_backward", "gemm", "pool2d"]
    for dev in _devices():
        if device and dev != device:
            continue
        for o in ops:
            if op and op not in (o, o.split("_")[0]):
                continue
            try:
                found = functional.algos(o, dev) if dev == "cpu" else _cuda_algos(o)
            except Exception:
                continue
            for a in found:
                src = a.get("source", "")
                rows.append({"op": o, "device": dev, "name": a["name"], "kind": a["kind"],
                             "description": a["description"], "source": f"csrc/{src}" if src else ""})
    for k in _registry().values():
        for o in _BACKEND_OP[k.op]:
            if o == "conv2d_backward" and not (k.has("convforge_conv2d_backward_data")
                                                 or k.has("convforge_conv2d_backward_weight")):
                continue
            if (op and op not in (o, o.split("_")[0], k.op)) or (device and device != k.device):
                continue
            rows.append({"op": o, "device": k.device, "name": k.name, "kind": "student",
                         "description": f"student kernel for {k.op}: {', '.join(k.provides)}", "source": k.path})
    return rows


def _cuda_algos(op):
    from . import cuda

    if not cuda.is_compiled():
        return []
    return builtins.list(cuda._module().algos(op))  # listed even without a visible GPU


# ---------------------------------------------------------------------------------------------
# Command line: convforge kernels [--op OP] [--device D] [--load FILE --load-op OP] [--json]
# ---------------------------------------------------------------------------------------------

def _cmd_kernels(args) -> int:
    import json

    for path in args.load or []:
        try:
            load_kernel(path, op=args.load_op)
        except KernelCompileError as e:
            print(e.output.rstrip(), file=sys.stderr)
            return 1
    rows = list(args.op, args.device)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    widths = [max([len(r[k]) for r in rows] + [len(k)]) for k in ("op", "device", "name", "kind")]
    head = "  ".join(k.ljust(w) for k, w in zip(("op", "device", "name", "kind"), widths))
    print(f"{head}  source / description")
    for r in rows:
        cols = "  ".join(r[k].ljust(w) for k, w in zip(("op", "device", "name", "kind"), widths))
        print(f"{cols}  {r['source']}\n{' ' * (sum(widths) + 8)}  {r['description']}")
    return 0


def add_subcommands(subparsers) -> None:
    """Adds `convforge kernels` to the command line's subparsers."""
    s = subparsers.add_parser("kernels", help="every kernel variant per op and device, with its source file")
    s.add_argument("--op", default=None, help="conv2d, conv2d_forward, conv2d_backward, gemm, pool2d")
    s.add_argument("--device", default=None, choices=["cpu", "cuda"])
    s.add_argument("--load", action="append", metavar="FILE", help="also load a student file (repeatable)")
    s.add_argument("--load-op", default="conv2d", choices=sorted(OPS))
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_cmd_kernels)
