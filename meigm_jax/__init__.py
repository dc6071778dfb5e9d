"""meigm_jax: ME-IGM (maximum-entropy QMIX with an order-preserving transformation) in JAX."""

import os as _os


def _cpu_runtime_workaround() -> None:
    # XLA's CPU runtime can wedge its multi-threaded Eigen pool while
    # materialising results of vmapped while-loops: the process sits idle in
    # block_until_ready forever (seen here in about one run in four). The
    # single-threaded Eigen path avoids it; XLA still runs independent ops in
    # parallel. It only affects ops on the CPU backend. Opt out with
    # MEIGM_CPU_MULTI_THREAD_EIGEN=1, or set the XLA flag yourself.
    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" in flags or _os.environ.get("MEIGM_CPU_MULTI_THREAD_EIGEN") == "1":
        return
    _os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false").strip()


_cpu_runtime_workaround()
