"""Test session set-up: a persistent XLA compilation cache shared by the
in-process runs and the CLI subprocesses, so a program compiles once, and
XLA's CPU backend told to compile quickly (the tests' programs are tiny, so
they spend far more time compiling than running). Subprocesses inherit both
through the environment."""

import os
import tempfile

_CACHE = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "meigm_jax_test_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

# Less LLVM optimisation: about a quarter less compile time; the same
# operations, though fused differently, so results agree up to float rounding.
FAST_COMPILE_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_COMPILE_FLAGS}".strip()
