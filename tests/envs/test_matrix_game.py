"""Paper Table 1: ME-QMIX finds the optimal joint action of the non-monotonic game."""

import jax
import numpy as np
import pytest

from meigm_jax.algorithm.analysis import (
    at_optimum,
    greedy_joint_index,
    most_probable_joint,
    seeds_joint_values,
    table1,
)
from meigm_jax.config.compose import load
from meigm_jax.envs.matrix_game import PAYOFF
from meigm_jax.algorithm.seeds import SEED_AXIS, seed_keys
from meigm_jax.programs.jax_trainer import make_train

NUM_SEEDS = 10


def _train(alg: str, overrides: tuple[str, ...] = ()):
    cfg = load([f"alg={alg}", *overrides, "+env=matrix_game", f"num_seeds={NUM_SEEDS}",
                "total_timesteps=10000"])
    trainer = make_train(cfg)
    state, metrics = jax.jit(jax.vmap(trainer.train, axis_name=SEED_AXIS))(seed_keys(cfg))
    return cfg, metrics, seeds_joint_values(trainer, state.params)


def _seeds_at_optimum(name: str, values):
    """Print each seed's P(A, A), greedy action and Q_tot(A, A); return (at (A, A), greedy (A, A))."""
    joint = np.asarray(most_probable_joint(values))
    q_aa = np.asarray(values.q_tot[:, 0])  # joint action index 0 is (A, A)
    greedy_aa = np.all(np.asarray(values.greedy_actions) == 0, axis=-1)
    for seed in range(NUM_SEEDS):
        print(f"{name} seed {seed}: P(A,A)={joint[seed, 0]:.3f} most probable={np.argmax(joint[seed])} "
              f"greedy={np.asarray(values.greedy_actions[seed]).tolist()} Q_tot(A,A)={q_aa[seed]:.2f}")
    ok = at_optimum(values, PAYOFF)
    print(f"{name}: {int(ok.sum())} of {NUM_SEEDS} seeds at (A, A)")
    return ok, greedy_aa


def _greedy_joint_maximises_q_tot(values):
    """IGM on the trained networks: the agents' greedy joint action is Q_tot's argmax."""
    greedy_index = np.asarray(greedy_joint_index(values))
    q_tot = np.asarray(values.q_tot)
    chosen = q_tot[np.arange(NUM_SEEDS), greedy_index]
    np.testing.assert_array_less(q_tot.max(-1) - chosen, 1e-4)


@pytest.fixture(scope="module")
def me_qmix():
    return _train("me_qmix")


# Which seeds find (A, A) is a draw: 39 of 64 for the ME-QMIX preset, 3 of
# 64 for QMIX (README, "Matrix game"). A machine whose CPU rounds
# differently (XLA compiles for the host's vector units) draws other seeds,
# so the counts asserted are ones that fail on a real regression, not on
# another draw: at those rates "ME-QMIX finds it at least once in 10" fails
# about one draw in 10^4, and "QMIX at most 5 of 10" about one in 10^5.


def test_me_qmix_reaches_the_optimal_joint_action(me_qmix):
    """Some seeds find (A, A), and where one does it is exact.

    Paper Table 1 shows ME-QMIX at (A, A). Only a share of seeds reach it
    with the preset, depending on the initialisation draw (README, "Matrix
    game"), so this asserts what holds on every draw rather than the
    paper's figure.
    """
    cfg, metrics, values = me_qmix
    ok, greedy_aa = _seeds_at_optimum("ME-QMIX", values)
    assert ok.sum() >= 1, f"no seed of {NUM_SEEDS} reached (A, A)"
    # Every seed whose greedy joint action is (A, A) has it as the policy's
    # most probable joint action (the OPT keeps the order) with Q_tot near 8.
    assert np.all(ok[greedy_aa])
    # The logged greedy evaluation agrees: those seeds' test return is 8.
    final_test = np.asarray(metrics.test_return[:, -1])
    np.testing.assert_array_equal(final_test[greedy_aa], 8.0)
    _greedy_joint_maximises_q_tot(values)
    assert np.all(np.asarray(metrics.env_steps[:, -1]) >= cfg.total_timesteps)
    assert np.all(np.isfinite(np.asarray(metrics.loss_q[:, -1])))
    # The entropy the alpha loss sees: a joint entropy of two 3-action agents,
    # in [0, 2 log 3] up to float32 rounding (a collapsed policy rounds to ±1e-9).
    learner_entropy = np.asarray(metrics.learner_entropy[:, -1])
    assert np.all((learner_entropy >= -1e-5) & (learner_entropy <= 2 * np.log(3) + 1e-5))


def test_qmix_report_on_the_matrix_game():
    """QMIX's epsilon-greedy data settle it elsewhere in most seeds (paper Table 1d); report it."""
    _, metrics, values = _train("qmix")
    greedy_aa = np.all(np.asarray(values.greedy_actions) == 0, axis=-1)
    print(f"QMIX: {int(greedy_aa.sum())} of {NUM_SEEDS} seeds reach (A, A) greedily; greedy "
          f"actions {np.asarray(values.greedy_actions).tolist()}")
    assert greedy_aa.sum() <= NUM_SEEDS // 2
    assert np.all(np.isfinite(np.asarray(values.q_tot)))
    assert np.all(np.isnan(np.asarray(metrics.learner_entropy)))  # no soft policy is learned
    assert np.all(np.isfinite(np.asarray(metrics.loss_q[:, -1])))
    _greedy_joint_maximises_q_tot(values)


# ME-QPLEX with a high-temperature start: QPLEX can fit the payoff exactly
# from near-uniform data, which ME-QMIX's monotonic mixer cannot (README,
# "Matrix game"); the near-greedy ME-QMIX preset suits it less (1 of 10).
ME_QPLEX = ("init_alpha=1.0", "alpha_lr=0.01", "env.target_entropy_coef=0.3",
            "buffer_size=500", "batch_size=32")


def test_me_qplex_on_the_matrix_game():
    """Paper Table 1 with ME-QPLEX, which reaches (A, A) in only a share of seeds.

    What must hold: every seed whose greedy joint action is (A, A) also has
    it as the policy's most probable joint action (the OPT keeps the order),
    Q_tot(A, A) near 8 and a greedy test return of 8.
    """
    _, metrics, values = _train("me_qplex", ME_QPLEX)
    ok, greedy_aa = _seeds_at_optimum("ME-QPLEX", values)
    assert ok.sum() >= 1, "no ME-QPLEX seed reached (A, A)"
    assert np.all(ok[greedy_aa])
    np.testing.assert_array_equal(np.asarray(metrics.test_return[:, -1])[greedy_aa], 8.0)
    _greedy_joint_maximises_q_tot(values)
    assert np.all(np.isfinite(np.asarray(metrics.loss_q[:, -1])))
    assert np.all(np.isfinite(np.asarray(metrics.loss_opt[:, -1])))


def test_table1_report_matches_the_trained_seeds(me_qmix):
    """The Table 1 layout the CLI prints: counts and per-seed actions as computed."""
    _, _, values = me_qmix
    text = table1(values, PAYOFF)
    ok = at_optimum(values, PAYOFF)
    assert text.startswith(f"Paper Table 1 after training: {int(ok.sum())} of {NUM_SEEDS} seeds have (A, A)")
    names = "ABC"
    policy = np.asarray(values.policy)
    q_tot = np.asarray(values.q_tot).reshape(NUM_SEEDS, 3, 3)
    for seed in range(NUM_SEEDS):
        g = np.asarray(values.greedy_actions[seed])
        assert f"seed {seed}: greedy ({names[g[0]]}, {names[g[1]]})" in text
        block = text.split(f"seed {seed}: ")[1].split("\n\nseed ")[0].splitlines()
        assert block[2] == "| | " + " | ".join(f"{n} {p:.2f}" for n, p in zip(names, policy[seed, 1])) + " |"
        assert block[4].startswith(f"| A {policy[seed, 0, 0]:.2f} | {q_tot[seed, 0, 0]:.1f} | ")
