"""Regression: initialising many seeds at once must never hang.

flax's default orthogonal GRU initialiser put three QR decompositions into
the vmapped init, which deadlocked XLA's CPU runtime now and then. The test
runs in a subprocess with a deadline, so a hang fails instead of stalling.
"""

import subprocess
import sys
import textwrap


def test_vmapped_init_repeatedly_completes():
    script = textwrap.dedent("""
        import jax
        from meigm_jax.config import from_dict
        from meigm_jax.algorithm.seeds import seed_keys
        from meigm_jax.programs.jax_trainer import make_train
        cfg = from_dict(dict(env=dict(name="matrix_game"), num_seeds=4, buffer_size=16, batch_size=4))
        trainer = make_train(cfg)
        init = jax.jit(jax.vmap(trainer.init))
        for _ in range(400):
            state = init(seed_keys(cfg))
            jax.block_until_ready(state)
        print("completed", state.params.log_alpha.shape)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "completed (4,)" in proc.stdout
