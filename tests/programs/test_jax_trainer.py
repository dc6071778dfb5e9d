"""The JAX trainer: training is a pure function of a key, and the chunk-by-chunk
path the run loop takes computes what the scanned ``train`` computes."""

from __future__ import annotations

import jax
import numpy as np

from meigm_jax.algorithm.seeds import SEED_AXIS, seed_keys
from meigm_jax.config.compose import load
from meigm_jax.programs.jax_trainer import make_train
from meigm_jax.programs.program import compile_program


def test_train_is_a_pure_function_of_its_key_and_chunks_compute_the_same():
    cfg = load(["+env=matrix_game", "alg=qmix", "num_seeds=2", "total_timesteps=1200", "test_interval=400",
                "batch_size=8", "buffer_size=64", "test_episodes=4"])
    trainer = make_train(cfg)
    assert trainer.num_chunks == 3
    train = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))
    keys = seed_keys(cfg)
    _, first = train(keys)
    _, again = train(keys)
    _, other = train(keys[::-1])
    for a, b in zip(first, again):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The seeds differ from each other, and swapping their keys swaps their runs.
    assert not np.array_equal(np.asarray(first.loss_q[:, 0]), np.asarray(first.loss_q[:, 1]))
    np.testing.assert_array_equal(np.asarray(other.loss_q)[::-1], np.asarray(first.loss_q))

    program = compile_program(trainer)
    state, chunks = program.state, []
    for index in range(trainer.num_chunks):
        state, metrics = program.chunk(state, np.int32(index))
        chunks.append(metrics)
    stepped = lambda name: np.stack([np.asarray(getattr(m, name)) for m in chunks], axis=1)  # [seeds, chunks]
    for name in ("env_steps", "updates", "episodes"):
        np.testing.assert_array_equal(stepped(name), np.asarray(getattr(first, name)), err_msg=name)
    # The two programs are fused differently by XLA: float rounding differs
    # and compounds over the gradient steps, so only the first chunk's
    # floats are compared closely (the counters above: every chunk, exactly).
    for name in ("test_return", "loss_q", "q_tot"):
        np.testing.assert_allclose(stepped(name)[:, 0], np.asarray(getattr(first, name))[:, 0], rtol=1e-4,
                                   atol=1e-5, err_msg=name)
    assert np.all(np.asarray(first.env_steps)[:, -1] >= 1200)
