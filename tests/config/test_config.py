"""The config's owners: named algorithms from their files, allowed names from
the registries that build each part, per-mixer and per-family paper values
from their declarations, and the roles of keys from the schema."""

import dataclasses
import re

import pytest
from helpers import small_config
import yaml

from meigm_jax.algorithm.networks.agent import AGENTS, TORSOS, RNNAgent
from meigm_jax.algorithm.networks.mixers import MIXERS, MixerEntry, VDNMixer
from meigm_jax.algorithm.networks.opt import TRANSFORMS
from meigm_jax.algorithm.networks.premix import PREMIXES
from meigm_jax.config import (CONFIG_DIR, OUTSIDE_PROGRAM, RESUMABLE, ConfigError, TrainConfig, alg_names,
                              defaults_dict, env_family, from_dict, hydra_schema, keys_with, to_dict)
from meigm_jax.config import algs
from meigm_jax.config.compose import group_options, load
from meigm_jax.envs import ENV_NAMES, FAMILIES, EnvFamily

ONE_LINE = re.compile(r"^config error: (\S+)=(.+) is not allowed; allowed: (.+)$")


def _error(data):
    with pytest.raises(ConfigError) as exc:
        from_dict(data)
    message = str(exc.value)
    assert "\n" not in message
    match = ONE_LINE.match(message)
    assert match, message
    return match.group(1), match.group(3).split(", ")


def _alg_file(name):
    return yaml.safe_load((CONFIG_DIR / "alg" / f"{name}.yaml").read_text())


def _leaves(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, prefix + key + ".")
        else:
            yield prefix + key, value


def _get(cfg_dict, dotted):
    for part in dotted.split("."):
        cfg_dict = cfg_dict[part]
    return cfg_dict


# ------------------------------------------------------------ named algorithms

def test_alg_names_are_the_files_under_configs_alg():
    files = sorted(p.stem for p in (CONFIG_DIR / "alg").glob("*.yaml"))
    assert len(files) == 9
    assert list(alg_names()) == files == group_options("alg")
    key, allowed = _error({"alg": {"name": "nope"}})
    assert key == "alg.name" and allowed == files


@pytest.mark.parametrize("name", sorted(p.stem for p in (CONFIG_DIR / "alg").glob("*.yaml")))
def test_a_named_alg_given_only_its_name_gets_every_key_of_its_file(name):
    cfg = to_dict(from_dict({"alg": {"name": name}}))
    leaves = dict(_leaves(_alg_file(name)))
    assert leaves["alg.name"] == name
    for key, value in leaves.items():
        assert _get(cfg, key) == value, key


@pytest.mark.parametrize("name", ["me_qmix_release", "qplex", "me_qmix_mlp"])
def test_from_dict_of_a_name_is_what_hydra_composes_for_it(name):
    assert to_dict(from_dict({"alg": {"name": name}})) == to_dict(load([f"alg={name}"]))


def test_release_parts_are_filled_only_where_not_given():
    cfg = from_dict({"alg": {"name": "me_qmix_release"}})
    assert (cfg.alg.mixer, cfg.opt.kind, cfg.premix.kind) == ("vdn", "affine", "residual")
    assert (cfg.td_weighting, cfg.fixed_alpha, cfg.grad_clip_scope) == ("release", 0.03, "joint")
    given = from_dict({"alg": {"name": "me_qmix_release", "mixer": "qmix"}, "premix": {"embed_dim": 8},
                       "fixed_alpha": None, "grad_clip_scope": "group"})
    assert (given.alg.mixer, given.premix.kind, given.premix.embed_dim) == ("qmix", "residual", 8)
    assert (given.fixed_alpha, given.grad_clip_scope, given.td_weighting) == (None, "group", "release")
    # The other algorithms set none of these parts.
    plain = from_dict({"alg": {"name": "me_qmix"}})
    assert (plain.premix.kind, plain.td_weighting, plain.fixed_alpha) == ("none", "none", None)


def test_a_new_alg_file_is_a_new_allowed_name_with_its_parts(tmp_path, monkeypatch):
    for path in (CONFIG_DIR / "alg").glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    (tmp_path / "me_vdn_release.yaml").write_text(
        "# @package _global_\nalg:\n  name: me_vdn_release\n  mixer: vdn\n  policy: soft\n"
        "opt:\n  kind: affine\ntd_weighting: release\n")
    monkeypatch.setattr(algs, "ALG_DIR", tmp_path)
    assert "me_vdn_release" in alg_names()
    cfg = from_dict({"alg": {"name": "me_vdn_release"}})
    assert (cfg.alg.mixer, cfg.opt.kind, cfg.td_weighting) == ("vdn", "affine", "release")


def test_custom_takes_its_parts_as_given():
    cfg = from_dict({"alg": {"name": "custom", "mixer": "qplex", "policy": "epsilon_greedy"},
                     "opt": {"kind": "none"}})
    assert (cfg.alg.mixer, cfg.alg.policy, cfg.opt.kind) == ("qplex", "epsilon_greedy", "none")
    assert "custom" not in alg_names()


# ------------------------------------------------------------ registries

@pytest.mark.parametrize("data,key,registry", [
    ({"alg": {"name": "custom", "mixer": "nope"}}, "alg.mixer", MIXERS),
    ({"agent": {"kind": "lstm"}}, "agent.kind", AGENTS),
    ({"agent": {"torso": "resnet"}}, "agent.torso", TORSOS),
    ({"opt": {"kind": "fancy"}}, "opt.kind", TRANSFORMS),
    ({"premix": {"kind": "deep"}}, "premix.kind", PREMIXES),
    ({"env": {"name": "smax_1v1"}}, "env.name", ENV_NAMES),
])
def test_an_unknown_name_is_one_line_listing_the_registry(data, key, registry):
    assert _error(data) == (key, list(registry))


def test_a_registered_mixer_is_allowed_and_brings_its_paper_values(monkeypatch):
    data = {"alg": {"name": "custom", "mixer": "sum2", "policy": "soft"}, "env": {"name": "smax_5v5"}}
    assert _error(data) == ("alg.mixer", list(MIXERS))
    monkeypatch.setitem(MIXERS, "sum2", MixerEntry(lambda *_: VDNMixer(), td_lambda=0.9, batch_size_run=2))
    cfg = from_dict(data)
    assert (cfg.alg.mixer, cfg.td_lambda, cfg.batch_size_run) == ("sum2", 0.9, 2)
    assert "sum2" in _error({"alg": {"name": "custom", "mixer": "nope"}})[1]


def test_a_registered_agent_is_allowed(monkeypatch):
    with pytest.raises(ConfigError):
        from_dict({"agent": {"kind": "gru2"}})
    monkeypatch.setitem(AGENTS, "gru2", RNNAgent)
    assert from_dict({"agent": {"kind": "gru2"}}).agent.kind == "gru2"


def test_opt_layers_are_the_opts_depths():
    assert _error({"opt": {"layers": 3}}) == ("opt.layers", ["1 or 2"])


# ------------------------------------------------------------ paper values by owner

@pytest.mark.parametrize("mixer,env,td_lambda,batch_size_run,reward_scale", [
    ("qmix", "smax_5v5", 0.4, 4, 10.0),
    ("vdn", "overcooked_cramped_room", 0.6, 4, 1.0),
    ("qmix", "matrix_game", 0.4, 4, 1.0),
    ("qmix", "smacv2_zerg_5v5", 0.4, 4, 1.0),
    ("qplex", "smax_terran_5v5", 0.6, 8, 10.0),
    ("qplex", "matrix_game", 0.6, 8, 1.0),
])
def test_null_keys_take_the_papers_values(mixer, env, td_lambda, batch_size_run, reward_scale):
    cfg = from_dict({"alg": {"name": "custom", "mixer": mixer}, "env": {"name": env}})
    assert (cfg.td_lambda, cfg.batch_size_run, cfg.env.reward_scale) == (td_lambda, batch_size_run, reward_scale)
    given = from_dict({"alg": {"name": "custom", "mixer": mixer}, "env": {"name": env, "reward_scale": 2.0},
                       "td_lambda": 0.1, "batch_size_run": 3})
    assert (given.td_lambda, given.batch_size_run, given.env.reward_scale) == (0.1, 3, 2.0)


def test_every_env_has_a_declared_family():
    assert {env_family(name) for name in ENV_NAMES} == set(FAMILIES)


def test_a_familys_declaration_is_what_its_envs_get(monkeypatch):
    monkeypatch.setitem(FAMILIES, "smax", EnvFamily(td_lambda=0.7, reward_scale=3.0))
    cfg = from_dict({"alg": {"name": "qmix"}, "env": {"name": "smax_10v10"}})
    assert (cfg.td_lambda, cfg.env.reward_scale) == (0.7, 3.0)
    assert from_dict({"alg": {"name": "qplex"}, "env": {"name": "smax_10v10"}}).td_lambda == 0.6


def test_a_family_that_steps_on_the_host_trains_one_seed_per_run(monkeypatch):
    with pytest.raises(ConfigError, match="num_seeds=2 is not allowed for smacv2_zerg_5v5"):
        from_dict({"env": {"name": "smacv2_zerg_5v5"}, "num_seeds": 2})
    assert from_dict({"env": {"name": "matrix_game"}, "num_seeds": 2}).num_seeds == 2
    monkeypatch.setitem(FAMILIES, "matrix", EnvFamily(steps_on_host=True))
    with pytest.raises(ConfigError, match="num_seeds=2 is not allowed for matrix_game"):
        from_dict({"env": {"name": "matrix_game"}, "num_seeds": 2})


# ------------------------------------------------------------ roles and schema

def test_roles_are_declared_on_their_keys():
    assert set(keys_with(OUTSIDE_PROGRAM)) == {"resume", "wandb", "checkpoint", "distributed",
                                               "distributed_timeout", "compile_cache"}
    assert set(keys_with(RESUMABLE)) == {"resume", "total_timesteps", "wandb", "checkpoint", "distributed",
                                         "distributed_timeout"}
    assert keys_with("no_such_role") == ()


def test_the_running_code_reads_the_roles_from_the_schema():
    from meigm_jax.programs.compile_cache import OUTSIDE_PROGRAMS
    from meigm_jax.running.run_dir import RESUMABLE_CHANGES

    assert OUTSIDE_PROGRAMS == keys_with(OUTSIDE_PROGRAM)
    assert RESUMABLE_CHANGES == keys_with(RESUMABLE)


def test_hydra_schema_has_every_key_and_default():
    from omegaconf import OmegaConf

    node = OmegaConf.structured(hydra_schema())
    defaults = defaults_dict()
    defaults["wandb"]["tags"] = list(defaults["wandb"]["tags"])
    assert OmegaConf.to_container(node) == defaults
    assert not dataclasses.fields(hydra_schema())[0].type.__dataclass_params__.frozen
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainConfig().seed = 1


def test_none_of_a_group_keeps_its_defaults():
    assert from_dict({"opt": None, "segment": None}) == from_dict({})


@pytest.mark.parametrize("over", [dict(alpha_min=2.0), dict(alpha_max=0.5), dict(alpha_min=-1.0),
                                  dict(target_entropy_scope="each")])
def test_bad_temperature_settings_are_refused_in_one_line(over):
    with pytest.raises(ConfigError) as err:
        small_config(alg=dict(name="me_qmix"), **over)
    assert list(over)[0] in str(err.value) and "\n" not in str(err.value)
