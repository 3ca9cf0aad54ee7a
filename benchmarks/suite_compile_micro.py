"""Micro (issue 30): one backend worker's run_case in this process, CPU seconds and a digest of every output:

    [CACHE=DIR] python benchmarks/suite_compile_micro.py SPEC MODES NCASES STEP OFFSET

runs every STEP-th case of `--suite full` from OFFSET (NCASES of them) through SPEC's variants of
MODES with the property checks; CACHE: JAX's persistent compilation cache in DIR (for TensorFlow's
XLA cache set TF_XLA_FLAGS=--tf_xla_persistent_cache_directory=DIR). Equal digests: equal outputs
and properties. benchmarks/results/suite-compile-micro-2026-12-06.json holds its figures.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time

import numpy as np

from xentcheck.core.cases import full_suite
from xentcheck.run.protocol import RunRequest
from xentcheck.run.worker import hello, run_case


def main() -> None:
    cache = os.environ.get("CACHE")
    if cache:
        import jax
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    spec, modes = sys.argv[1], sys.argv[2].split(",")
    ncases, step, offset = (int(a) for a in sys.argv[3:6])
    cases = [c.id for c in full_suite()][offset::step][:ncases]
    backend, greeting = hello(spec)
    variants = [(v["impl"], v["mode"]) for v in greeting.variants or [] if v["mode"] in modes and not v.get("opt_in")]
    folder = tempfile.mkdtemp()
    start = time.process_time()
    digest = hashlib.sha1()
    for i, cid in enumerate(cases):
        reply = run_case(backend, RunRequest(cid, 0, "cpu", f"{folder}/{i}", variants, True, 1e-3, 1e-3, True))
        for j, out in enumerate(reply.results):
            digest.update(repr((out.status, out.properties)).encode())
            if out.status == "ok":
                with np.load(f"{folder}/{i}-{j}.npz") as z:
                    for k in z.files:
                        digest.update(z[k].tobytes())
    print(spec, modes, "cache" if cache else "no cache", "cpu", round(time.process_time() - start, 1),
          digest.hexdigest()[:12])


if __name__ == "__main__":
    main()
