"""Action selection: the soft policy's temperature, its greedy limit, epsilon-greedy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from meigm_jax.algorithm.policy import epsilon_greedy_probs, greedy, soft_policy, temperature


def test_per_agent_temperatures_divide_each_agents_logits():
    logits = jnp.asarray([[[1.0, 0.0], [1.0, 0.0]]])  # [1, n=2, k=2]
    avail = jnp.ones((1, 2, 2), bool)
    log_alpha = jnp.log(jnp.asarray([0.5, 2.0]))
    pi = soft_policy(logits, avail, temperature(log_alpha))
    for i, alpha in enumerate((0.5, 2.0)):
        want = soft_policy(logits[:, i], avail[:, i], jnp.asarray(alpha))
        np.testing.assert_allclose(np.asarray(pi.log_probs[:, i]), np.asarray(want.log_probs), rtol=1e-6)
    assert temperature(jnp.zeros(())).shape == ()


def test_soft_policy_is_the_masked_softmax_and_greedy_at_alpha_zero():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(5, 3, 4)), jnp.float32)
    avail = jnp.asarray(rng.random((5, 3, 4)) < 0.7).at[..., 0].set(True)
    pi = soft_policy(logits, avail, jnp.asarray(0.3))
    want = jax.nn.softmax(jnp.where(avail, logits / 0.3, -jnp.inf), axis=-1)
    np.testing.assert_allclose(np.exp(np.asarray(pi.log_probs)), np.asarray(want), rtol=1e-5, atol=1e-7)
    on = np.asarray(avail)  # alpha log pi is finite by design where pi is 0
    np.testing.assert_allclose(np.asarray(pi.alpha_log_probs)[on], 0.3 * np.log(np.asarray(want))[on],
                               rtol=1e-4, atol=1e-6)
    cold = soft_policy(logits, avail, jnp.asarray(0.0))
    best = np.asarray(greedy(logits, avail))
    np.testing.assert_array_equal(np.argmax(np.asarray(cold.log_probs), -1), best)
    assert np.all(np.isfinite(np.asarray(cold.alpha_log_probs)))


def test_epsilon_greedy_spreads_epsilon_over_the_available_actions():
    q = jnp.asarray([[3.0, 1.0, 2.0, 0.0]])
    avail = jnp.asarray([[True, True, False, True]])
    probs = np.asarray(epsilon_greedy_probs(q, avail, jnp.asarray(0.3)))[0]
    np.testing.assert_allclose(probs, [0.7 + 0.1, 0.1, 0.0, 0.1], rtol=1e-6)
