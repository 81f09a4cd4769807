"""Native CPU kernels, compiled on first use and called through XLA's FFI.

Two operations run far below the machine's speed in XLA's CPU runtime: a BPR step, a
dozen row gathers and scatters of its minibatch (XLA's CPU scatter updates one row at a
time), and ``lax.top_k`` on long rows (a heap-based partial sort per row). The kernels
here (C++ sources next to this file) do the former for every epoch of a fit in one call,
one pass over each batch (``bpr_epochs.cc``), and the latter as one thresholded pass per
row (``topk.cc``), with threads. Each has a pure-JAX twin in the library that defines its
semantics and is the oracle of its tests; the JAX twin is what runs on GPU/TPU, or on a
CPU without a C++ compiler.

Build: the first call of :func:`load` compiles the sources with ``$CXX`` (default
``g++``) against ``jax.ffi.include_dir()`` into the per-user cache
(``$COMPLEMJAX_CACHE_DIR/native`` if set, else ``$XDG_CACHE_HOME/complemjax/native``,
else ``~/.cache/complemjax/native``), keyed by a hash of the source, the jaxlib version,
the compiler flags and the CPU's feature flags; later processes reuse the library. Nothing
is downloaded. ``COMPLEMJAX_NATIVE=0`` switches the kernels off (the JAX twins run).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import jax

__all__ = ["available", "cpu_threads", "load"]

_SOURCES = ("bpr_epochs.cc", "topk.cc")
_TARGETS = {
    "complemjax_bpr_epochs": "ComplemjaxBprEpochs",
    "complemjax_topk_rows": "ComplemjaxTopkRows",
}
_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-std=c++17", "-shared", "-fPIC", "-pthread")


def _cache_dir() -> Path:
    env = os.environ.get("COMPLEMJAX_CACHE_DIR")
    if env:
        return Path(env).expanduser() / "native"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "complemjax" / "native"


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _build_key(compiler: str) -> str:
    import jaxlib

    h = hashlib.sha256()
    for name in _SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    for part in (jaxlib.__version__, compiler, " ".join(_FLAGS), platform.machine(), _cpu_flags()):
        h.update(part.encode())
    return h.hexdigest()[:24]


def _compile(compiler: str, out: Path) -> None:
    src = [str(Path(__file__).parent / name) for name in _SOURCES]
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    cmd = [compiler, *_FLAGS, f"-I{jax.ffi.include_dir()}", *src, "-o", tmp]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp, out)  # atomic: concurrent builders (test workers) are harmless
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.cache
def load() -> bool:
    """Compile (once per machine) and register the native kernels; True when usable.

    Returns False, with one warning saying why, when ``COMPLEMJAX_NATIVE=0``, when no C++
    compiler is found, or when the build fails; the callers then run their JAX twins.
    """
    if os.environ.get("COMPLEMJAX_NATIVE", "1") == "0":
        return False
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        warnings.warn(
            "complemjax: native kernels unavailable (no C++ compiler found); using the "
            "pure-JAX steps",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    try:
        lib_path = _cache_dir() / f"complemjax_native_{_build_key(compiler)}.so"
        if not lib_path.exists():
            _compile(compiler, lib_path)
        lib = ctypes.cdll.LoadLibrary(str(lib_path))
        for target, symbol in _TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), "cpu")
    except Exception as err:  # any failure (no cache dir, old jax, bad build): JAX twins run
        warnings.warn(
            f"complemjax: native kernels unavailable ({err}); using the pure-JAX steps",
            RuntimeWarning,
            stacklevel=2,
        )
        return False
    return True


def available() -> bool:
    """Whether the native kernels can run (built and registered) in this process."""
    return load()


def cpu_threads() -> int:
    """Threads a native kernel uses: ``$COMPLEMJAX_NATIVE_THREADS``, else the usable CPUs.

    Read when a kernel call is traced: a program already traced keeps its count (JAX reuses
    the traces of jitted functions; ``jax.clear_caches()`` drops them).
    """
    env = os.environ.get("COMPLEMJAX_NATIVE_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
