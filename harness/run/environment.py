"""What a run's numbers depend on: machine, library versions and numerics-relevant settings."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from xentcheck.core import kernel

# One thread per worker: deterministic reductions, no oversubscription while several backends
# run side by side; each worker process still gets a core of its own.
WORKER_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
NUMERICS_ENV = ("XLA_FLAGS", "TF_ENABLE_ONEDNN_OPTS", "JAX_ENABLE_X64", "JAX_DEFAULT_MATMUL_PRECISION",
                "JAX_DEFAULT_DTYPE_BITS", "JAX_PLATFORMS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
                "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE",
                "ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "TF_NUM_INTRAOP_THREADS",
                "TF_NUM_INTEROP_THREADS", "TF_DETERMINISTIC_OPS", "TF_ENABLE_XLA", "NVIDIA_TF32_OVERRIDE",
                "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "CUBLAS_WORKSPACE_CONFIG", "CUDA_VISIBLE_DEVICES",
                "KERAS_BACKEND")
PACKAGES = ("numpy", "ml_dtypes", "mpmath", "torch", "tensorflow", "tensorflow-cpu", "keras", "jax",
            "jaxlib", "optax")


def numerics_env(env: Mapping[str, str]) -> dict[str, str]:
    """The NUMERICS_ENV variables set in `env`: what a framework's numerics depend on besides
    its version and the machine (a worker's own environment, recorded in its hello; the repro
    scripts set the same before they import NumPy and the framework)."""
    return {k: env[k] for k in NUMERICS_ENV if k in env}


def thread_env(threads: int) -> dict[str, str]:
    """The same intra-op thread count for every framework (bench: forced, whatever the caller's env says)."""
    n = str(threads)
    xla = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1 else \
        f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}"
    return {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "TF_NUM_INTRAOP_THREADS": n,
            "TF_NUM_INTEROP_THREADS": "1", "XLA_FLAGS": xla}


# glibc's malloc, left to itself, hands freed memory at the top of its heap back to the OS past a
# threshold that moves with the sizes it has seen: whether a timed call's buffers come back as
# fresh pages (faulted and zeroed: 30 faults a call for torch's 256 x 1000 forward+backward in one
# stretch, none in the next) then depends on the heap's history, not on the code timed. Fixed
# thresholds end that; larger buffers are mapped and unmapped on every call, every time alike.
STEADY_ALLOCATOR_ENV = {"MALLOC_TRIM_THRESHOLD_": str(1 << 28), "MALLOC_MMAP_THRESHOLD_": str(1 << 25)}
ALLOCATORS = ("steady", "as-is")


def allocator_env(mode: str) -> dict[str, str]:
    """The timing workers' malloc settings: "steady" fixes glibc's thresholds (STEADY_ALLOCATOR_ENV;
    a value the caller set already wins), "as-is" leaves malloc as the caller has it. Other C
    libraries ignore these variables."""
    if mode not in ALLOCATORS:
        raise ValueError(f"unknown allocator setting {mode!r} (choose from {', '.join(ALLOCATORS)})")
    if mode == "as-is":
        return {}
    return {key: os.environ.get(key, value) for key, value in STEADY_ALLOCATOR_ENV.items()}


def proc_kib(path: str, key: str) -> int | None:
    """A "Key:  N kB" line of a /proc file, in bytes (None where /proc has no such file or line)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


COMPILE_CACHE_ENV = "XENTCHECK_COMPILE_CACHE"  # a folder that keeps the compiled programs from run to run


def _installed(*names: str) -> str:
    """The first installed distribution of `names` with its version, e.g. tensorflow-2.21.0."""
    for name in names:
        try:
            return f"{name}-{version(name)}"
        except PackageNotFoundError:
            pass
    return "none"


def compile_cache_env(folder: Path, env: Mapping[str, str]) -> dict[str, str]:
    """Variables that make a run's workers share their compiled programs through `folder`: JAX's
    persistent compilation cache (every compilation, however short) and TensorFlow's XLA cache,
    each in a subfolder named by the framework's version, so that an upgraded framework compiles
    afresh, and by the CPU (cpu_key: XLA compiles for the features of the machine it runs on, so
    a cache shared by machines of different CPUs, as CI runners are, keeps one set for each).
    A worker then loads what a sibling (a helper of the same backend, docs/architecture.md) or,
    with XENTCHECK_COMPILE_CACHE, an earlier run already compiled for the same program, shapes
    and dtypes: the same machine code, so the same results. A cache the user set up in `env` is kept."""
    out: dict[str, str] = {}
    cpu = cpu_key()
    if "JAX_COMPILATION_CACHE_DIR" not in env:
        jax = folder / f"{_installed('jax')}-{_installed('jaxlib')}-cpu-{cpu}"
        out.update(JAX_COMPILATION_CACHE_DIR=str(jax), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
                   JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
    tf_flags = env.get("TF_XLA_FLAGS", "")
    if "tf_xla_persistent_cache_directory" not in tf_flags:
        tf = folder / f"xla-{_installed('tensorflow', 'tensorflow-cpu')}-cpu-{cpu}"
        out["TF_XLA_FLAGS"] = f"{tf_flags} --tf_xla_persistent_cache_directory={tf}".strip()
    return out


def compile_cache_folder(scratch: Path, env: Mapping[str, str]) -> Path:
    """Where a run's workers share their compiled programs: XENTCHECK_COMPILE_CACHE when set (kept
    after the run), else the run's scratch folder (removed with it)."""
    return Path(env[COMPILE_CACHE_ENV]).expanduser() if env.get(COMPILE_CACHE_ENV) else scratch / "compile-cache"


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    for key, value in WORKER_THREAD_ENV.items():
        env.setdefault(key, value)
    return env


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    """SIMD features decide which kernels (AVX-512, AVX2, FMA...) frameworks dispatch to."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return sorted(line.split(":", 1)[1].split())
    except OSError:
        pass
    return []


def cpu_key() -> str:
    """8 hex digits of the CPU model and its feature flags: machines with the same key run the
    same compiled code."""
    import hashlib
    return hashlib.sha256(f"{_cpu_model()}|{' '.join(_cpu_flags())}".encode()).hexdigest()[:8]


def _libc() -> str:
    name, ver = platform.libc_ver()
    return f"{name} {ver}".strip()


def fingerprint() -> dict:
    """Machine and library facts, without importing any framework. Frameworks' build facts
    (CUDA, cuDNN, oneDNN, thread pools) come from each worker's hello: see `with_backends`."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    env = worker_env()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "os_release": platform.release(),
        "libc": _libc(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "packages": versions,
        "numerics_env": numerics_env(env),
        "reference_kernel": kernel.name(),  # C or NumPy: the same formula, bits within a few ulps
    }


def with_backends(env: dict, infos: list[dict]) -> dict:
    """The fingerprint plus, per backend worker, its interpreter, version, build settings and the
    numerics variables it ran under."""
    backends = {}
    for i in infos:
        if not i:
            continue
        backends[i.get("name", i.get("spec", "?"))] = {
            k: i[k] for k in ("status", "impl", "mode", "version", "python", "executable", "settings",
                              "numerics_env", "reason", "node")
            if k in i}
    return {**env, "backends": backends}
