"""The run's program: the one pre-flight that makes it, and seeds that take turns."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from meigm_jax.config.compose import load
from meigm_jax.envs import make_env
from meigm_jax.errors import ConfigError
from meigm_jax.config.schema import swept_keys
from meigm_jax.programs.jax_trainer import make_train
from meigm_jax.programs.program import JaxProgram, per_run, run_keys, run_values, seeds_in_turn
from meigm_jax.running.prepare import prepare


def test_seeds_in_turn_compute_what_vmapped_seeds_compute():
    """A chunk of one seed, run over a block of seeds one after another, is
    the vmapped chunk: the same states and metrics, seed by seed."""

    def chunk(state, values, index):
        x, count = state
        y = jnp.tanh(x * (index + 1.0) * values["scale"]) + count
        return (y, count + 1), {"mean": y.mean(), "index": index}

    block = (jnp.arange(12.0).reshape(4, 3) / 7.0, jnp.arange(4))
    values = {"scale": jnp.array([0.5, 1.0, 2.0, 3.0])}  # each run's own value of a swept key
    vmapped = jax.vmap(chunk, in_axes=(0, 0, None))(block, values, jnp.int32(2))
    in_turn = jax.jit(seeds_in_turn(chunk))(block, values, jnp.int32(2))
    for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(in_turn)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_prepare_makes_the_program_and_stores_only_what_the_config_names():
    cfg = load(["+env=matrix_game", "num_seeds=1"])
    program = prepare(cfg)
    assert isinstance(program, JaxProgram) and program._storable
    assert program.spec.name == "matrix_game" and program.num_chunks == math.ceil(cfg.total_timesteps / cfg.test_interval)
    # The caller's own env: the config does not name all of it, so nothing is stored whole.
    assert not prepare(cfg, make_env("matrix_game"))._storable


def test_prepare_refuses_a_replay_that_does_not_fit_before_compiling():
    cfg = load(["+env=smax_5v5", "buffer_size=5000000", "batch_size=8"])
    with pytest.raises(ConfigError) as err:
        prepare(cfg)
    assert "buffer_size=5000000 does not fit" in str(err.value) and "\n" not in str(err.value)


# Every key a sweep may trace, in three sweeps (keys an algorithm never
# reads, or that fixed_alpha sets aside, are refused in the same sweep).
TRACED = {
    "me_qmix": ["lr", "opt_lr", "alpha_lr", "init_alpha", "td_lambda", "gamma", "target_tau",
                "env.target_entropy_coef", "env.target_entropy_start_coef"],
    "me_vdn": ["fixed_alpha"],
    "qmix": ["epsilon_start", "epsilon_finish"],
}


def test_every_swept_key_traces_through_init_and_a_chunk():
    assert sorted(key for keys in TRACED.values() for key in keys) == sorted(swept_keys())
    for alg, keys in TRACED.items():
        values = {"target_tau": "[0.01,0.02]", "gamma": "[0.9,0.99]"}
        cfg = load(["+env=matrix_game", f"alg={alg}", "num_seeds=2", "sweep.mode=zip", "hidden_dim=8",
                    *[f"sweep.{key}={values.get(key, '[0.2,0.3]')}" for key in keys]])
        trainer_of, swept = per_run(make_train(cfg)), run_values(cfg)
        assert sorted(swept) == sorted(keys) and all(v.shape == (4,) for v in swept.values())
        # Tracing (not compiling) both: a swept value used as a Python number would fail here.
        state = jax.eval_shape(jax.vmap(lambda key, v: trainer_of(v).init(key)), run_keys(cfg), swept)
        _, metrics = jax.eval_shape(jax.vmap(lambda s, v: trainer_of(v).chunk(s, 0)), state, swept)
        assert metrics.test_return.shape == (4,)
