"""Native CPU kernels for work PyTorch runs as many small ops: the GRU's recurrence (gru.c),
dropout (dropout.c) and attention with dropped weights (attention.c). They are compiled on first
use by the machine's C compiler (`$CC`, else gcc or cc) for its own CPU (-march=native) and cached
per source, flags and CPU in `$NEXTSWEEP_CACHE` (default ~/.cache/nextsweep); a compile takes about
a second, once per machine. Where no compiler is found or the compile fails, `kernels()` returns
None (with one warning) and callers keep their PyTorch path; `NEXTSWEEP_NATIVE=0` switches the
kernels off. Their matmuls call the BLAS sgemm that PyTorch's CPU library exports, and their
threads are PyTorch's OpenMP pool (the same libgomp).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCES = sorted(Path(__file__).parent.glob("*.c"))
HEADERS = sorted(Path(__file__).parent.glob("*.h"))
# -ffast-math lets gcc call glibc's vector expf / tanhf (libmvec); no kernel tests for infinities or NaN.
# On x86, 512-bit vectors where the CPU has them: the gate pass takes ~40% less time than at 256.
FLAGS = ["-O3", "-march=native", "-ffast-math", "-fopenmp", "-fPIC"] + (
    ["-mprefer-vector-width=512"] if platform.machine() in ("x86_64", "AMD64") else [])
# Linked without -ffast-math: with it, gcc < 13 links crtfastmath.o, whose constructor would switch the
# whole process (torch, numpy) to flush denormals to zero when the library loads.
LINK = ["-shared", "-fopenmp"]
_P = ctypes.c_void_p
_I = ctypes.c_int


def enabled() -> bool:
    return os.environ.get("NEXTSWEEP_NATIVE", "1") != "0"


def kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None (native code switched off or not buildable here)."""
    return _load() if enabled() else None


@functools.cache
def blas(name: str) -> int:
    """Address of a BLAS function PyTorch's CPU library exports (sgemm_)."""
    lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / _torch_cpu_library()))
    return ctypes.cast(getattr(lib, name), ctypes.c_void_p).value


def _torch_cpu_library() -> str:
    return "libtorch_cpu.dylib" if platform.system() == "Darwin" else "libtorch_cpu.so"


@functools.cache
def _load() -> ctypes.CDLL | None:
    try:
        blas("sgemm_")
        lib = ctypes.CDLL(str(_build()))
    except (OSError, AttributeError, subprocess.SubprocessError, RuntimeError) as e:
        log.warning("nextsweep: native kernels unavailable (%s); using the PyTorch path", str(e).strip()[-300:])
        return None
    lib.gru_forward.argtypes = [_P, _I, _I, _I, _I] + [_P] * 6
    lib.gru_backward.argtypes = [_P, _I, _I, _I, _I] + [_P] * 8
    lib.dropout_apply.argtypes = [_I, ctypes.c_int64, ctypes.c_uint64, _I, ctypes.c_float, _P, _P, _P]
    shape = [_I] * 6 + [ctypes.c_float, ctypes.c_uint64]  # threads, b, t, heads, dh, cut, scale, seed
    lib.attention_forward.argtypes = lib.attention_backward.argtypes = [*shape, _P, _P, _P, _P]
    for fn in (lib.gru_forward, lib.gru_backward, lib.dropout_apply, lib.attention_forward, lib.attention_backward):
        fn.restype = None
    return lib


def _build() -> Path:
    """The cached shared library for this source, compiler, flags and CPU; compiled if missing."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise RuntimeError("no C compiler (set CC, or install gcc)")
    parts = [*(p.read_text() for p in SOURCES + HEADERS), cc, *FLAGS, *LINK, _cpu_id()]
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("NEXTSWEEP_CACHE") or Path.home() / ".cache" / "nextsweep") / "native"
    target = cache / f"kernels-{key}.so"
    if target.exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:  # compile aside, then rename: concurrent workers are safe
        objects = [str(Path(tmp) / f"{src.stem}.o") for src in SOURCES]
        for src, obj in zip(SOURCES, objects):
            _run([cc, *FLAGS, "-c", str(src), "-o", obj])
        out = Path(tmp) / target.name
        _run([cc, *LINK, *objects, "-o", str(out), "-lm"])
        os.replace(out, target)
    return target


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise RuntimeError(f"{command[0]} failed: {done.stderr}")


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU's model and feature flags."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    lines = [ln for ln in info.splitlines() if ln.startswith(("model name", "flags", "Features", "CPU part"))]
    return platform.machine() + "\n".join(sorted(set(lines)))
