"""Every layer starts as PyTorch's would (pymarl2's initialisation).

Weights and biases of each dense, convolutional and GRU layer are drawn from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for every algorithm preset, both OPT
depths and both agent torsos. A layer that slips back to flax's defaults
(lecun-normal kernels, zero biases) fails here.
"""

import math

import jax
import numpy as np
import pytest

from meigm_jax.config.compose import group_options, load
from meigm_jax.envs import make_env
from meigm_jax.algorithm.networks.model import build_networks, init_params

CASES = [["alg=" + alg] for alg in group_options("alg")] + [
    ["alg=me_qmix", "opt.layers=2"],
    ["alg=me_qplex", "opt.layers=2"],
]


def _layers(tree, path=()):
    """(path, kernel, bias or None) for every layer in a params tree."""
    if "kernel" in tree:
        yield "/".join(path), np.asarray(tree["kernel"]), tree.get("bias")
    for name, sub in tree.items():
        if isinstance(sub, dict):
            yield from _layers(sub, path + (name,))


def _params(overrides):
    cfg = load(overrides)
    spec = make_env(cfg.env.name).spec
    params = init_params(build_networks(cfg, spec), cfg, spec, jax.random.PRNGKey(3))
    return cfg, params


def _check_torch_bounds(params):
    layers = [layer for part in (params.agent, params.mixer, params.transform)
              for layer in _layers(jax.tree.map(np.asarray, dict(part).get("params", {})))]
    for path, kernel, bias in layers:
        fan_in = math.prod(kernel.shape[:-1])
        bound = 1.0 / math.sqrt(fan_in)
        assert np.abs(kernel).max() <= bound, path
        if kernel.size >= 256:  # a uniform draw, not a narrower one
            assert np.abs(kernel).max() > 0.95 * bound, path
            assert abs(kernel.std() / (bound / math.sqrt(3)) - 1) < 0.15, path
        if bias is not None:
            bias = np.asarray(bias)
            assert np.abs(bias).max() <= bound, path
            assert np.any(bias != 0), f"{path}: zero bias"
            if bias.size >= 32:
                assert np.abs(bias).max() > 0.8 * bound, path
    return [path for path, _, _ in layers]


@pytest.mark.parametrize("overrides", CASES, ids=" ".join)
def test_every_layer_of_every_preset_starts_as_pytorch(overrides):
    cfg, params = _params(overrides + ["+env=smax_5v5"])
    paths = _check_torch_bounds(params)
    assert any(p.startswith("gru/") for p in paths) and "encoder" in paths and "q_head" in paths
    if cfg.alg.mixer == "qmix":
        # pymarl2's nmix: the b2 hypernetwork is hypernet_embed (64) wide.
        assert params.mixer["params"]["hyper_b2"]["kernel"].shape[-1] == cfg.hypernet_embed == 64
        assert {"hyper_w1", "hyper_w2", "hyper_b1", "hyper_b2", "hyper_b2_out"} <= set(params.mixer["params"])


def test_cnn_torso_starts_as_pytorch():
    _, params = _params(["alg=me_qmix", "+env=overcooked_cramped_room", "agent.torso=cnn"])
    paths = _check_torch_bounds(params)
    assert {"conv0", "conv1"} <= set(paths)


def test_fresh_qmix_mixer_has_pymarl2_scale():
    # An untrained mixer on states in [0, 1]: dQ_tot/dQ_i was about 2.5 with
    # flax's defaults; PyTorch's bounds give about 0.5.
    cfg, params = _params(["alg=qmix", "+env=smax_5v5"])
    spec = make_env(cfg.env.name).spec
    mixer = build_networks(cfg, spec).mixer
    kq, ks = jax.random.split(jax.random.PRNGKey(0))
    q = jax.random.normal(kq, (256, spec.num_agents))
    state = jax.random.uniform(ks, (256, spec.state_dim))
    grads = jax.vmap(jax.grad(lambda q, s: mixer.apply(params.mixer, q, s)))(q, state)
    assert 0.2 < float(grads.mean()) < 1.0
