"""Native CPU kernels for work PyTorch runs as many small ops: the GRU's recurrence (gru.c),
dropout (dropout.c) and attention with dropped weights (attention.c). They are compiled on first
use by the machine's C compiler (`$CC`, else gcc or cc) for its own CPU (-march=native) and cached
per source, flags and CPU in `$NEXTSWEEP_CACHE` (default ~/.cache/nextsweep); a compile takes about
a second, once per machine. Whoever can write to the cache runs code in every Ray worker, so its
directory is made 0700 and a cached library is loaded only where no one but this user could have
written it or its directory (else a private copy is compiled for the process, with one warning).
Where no compiler is found or the compile fails, `kernels()` returns None (with one warning) and
callers keep their PyTorch path; `NEXTSWEEP_NATIVE=0` switches the kernels off. Their matmuls call
the BLAS sgemm that PyTorch's CPU library exports, and their threads are PyTorch's OpenMP pool (the
same libgomp). runtime_facts() names the path a run takes, for a trial's record."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
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


def runtime_facts() -> dict:
    """What decides a run's numbers besides its config and seed: the kernel path ("native-<cache
    key>", or "pytorch": their dropout masks differ), the CPU model (vector widths and libm round
    differently) and torch's thread count (a float sum's order). Keys: models.config.RUNTIME_KEYS."""
    path = f"native-{_key(_compiler())}" if kernels() is not None else "pytorch"
    return {"kernels": path, "cpu_model": cpu_model(), "torch_threads": torch.get_num_threads()}


def runtime_notice(recorded: dict, here: dict | None = None) -> str | None:
    """One line where this process (`here`, default runtime_facts()) runs on another kernel path
    or CPU than a trial `recorded`; None where they match or the trial predates the record."""
    here = here or runtime_facts()
    keys = ("kernels", "cpu_model")
    if not all(k in recorded for k in keys) or all(recorded[k] == here[k] for k in keys):
        return None
    paths = {recorded["kernels"], here["kernels"]}
    why = "dropout masks differ" if "pytorch" in paths and len(paths) == 2 else "float rounding may differ"
    return f"results may differ from the trial's: it ran on {_ran_on(recorded)}, this runs on {_ran_on(here)} ({why})"


def _ran_on(facts: dict) -> str:
    path = facts["kernels"]
    path = "the PyTorch path" if path == "pytorch" else f"native kernels {path.removeprefix('native-')}"
    return f"{path} on {facts['cpu_model']}"


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows of it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        lib = _open()
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


def _open() -> ctypes.CDLL:
    """The cached shared library for this source, compiler, flags and CPU; compiled if missing.
    Where someone else could have written it, a private copy compiled in a fresh 0700 directory."""
    cc = _compiler()
    target = _cache_dir() / f"kernels-{_key(cc)}.so"
    why = _unsafe(target.parent) or (_unsafe(target) if os.path.lexists(target) else None)
    if why is None:
        if not target.exists():
            _compile(cc, target)
        return ctypes.CDLL(str(target))
    log.warning("nextsweep: not loading the cached kernels %s (%s); compiling a private copy for this process "
                "(remove it, or make it and its directory this user's with mode 0700)", target, why)
    with tempfile.TemporaryDirectory(prefix="nextsweep-native-") as tmp:  # mkdtemp: 0700, ours alone
        private = Path(tmp) / target.name
        _compile(cc, private)
        return ctypes.CDLL(str(private))  # mapped: the file may go once loaded


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise RuntimeError("no C compiler (set CC, or install gcc)")
    return cc


def _key(cc: str) -> str:
    parts = [*(p.read_text() for p in SOURCES + HEADERS), cc, *FLAGS, *LINK, _cpu_id()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _cache_dir() -> Path:
    cache = Path(os.environ.get("NEXTSWEEP_CACHE") or Path.home() / ".cache" / "nextsweep") / "native"
    cache.parent.mkdir(parents=True, exist_ok=True)
    try:
        cache.mkdir(mode=0o700)  # the umask only takes bits away
    except FileExistsError:
        pass  # an older one keeps its mode: _unsafe() judges it
    return cache


def _unsafe(path: Path) -> str | None:
    """Why someone other than this user could have written `path` (lstat: a link is not
    followed, and its mode 0777 refuses it), or None."""
    st = os.lstat(path)
    if st.st_uid != os.getuid():
        return f"owned by uid {st.st_uid}, not this user's {os.getuid()}"
    if st.st_mode & 0o022:
        return f"writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _compile(cc: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # built aside, renamed: safe for concurrent workers
        objects = [str(Path(tmp) / f"{src.stem}.o") for src in SOURCES]
        for src, obj in zip(SOURCES, objects):
            _run([cc, *FLAGS, "-c", str(src), "-o", obj])
        out = Path(tmp) / target.name
        _run([cc, *LINK, *objects, "-o", str(out), "-lm"])
        out.chmod(0o700)  # not the umask's: a group-writable library would be refused next time
        os.replace(out, target)


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
