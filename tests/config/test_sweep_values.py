"""A sweep as plain data: its values in order, each as its lone run's config,
and the keys the learner traces."""

import dataclasses

import numpy as np
import pytest

from meigm_jax.algorithm.hyper import Hyperparameters, hyperparameters
from meigm_jax.config import from_dict, to_dict
from meigm_jax.config.compose import load
from meigm_jax.config.schema import swept_keys
from meigm_jax.config.sweep import point_config, point_name, points, run_count
from meigm_jax.programs.program import run_values
from meigm_jax.running.run_dir import sweep_members


def test_product_and_zip_list_the_values_in_order():
    product = from_dict({"num_seeds": 3, "sweep": {"alpha_lr": [0.03, 0.3], "lr": [1e-3, 5e-4]}})
    assert points(product) == [{"lr": 1e-3, "alpha_lr": 0.03}, {"lr": 1e-3, "alpha_lr": 0.3},
                               {"lr": 5e-4, "alpha_lr": 0.03}, {"lr": 5e-4, "alpha_lr": 0.3}]
    assert run_count(product) == 12
    assert [point_name(p) for p in points(product)][:2] == ["lr=0.001,alpha_lr=0.03", "lr=0.001,alpha_lr=0.3"]
    zipped = dataclasses.replace(product, sweep=dataclasses.replace(product.sweep, mode="zip"))
    assert points(zipped) == [{"lr": 1e-3, "alpha_lr": 0.03}, {"lr": 5e-4, "alpha_lr": 0.3}]
    assert points(from_dict({})) == [{}] and run_count(from_dict({"num_seeds": 2})) == 2


def test_a_value_is_the_config_of_its_lone_run():
    swept = load(["sweep.env.target_entropy_coef=[0.1,0.5]", "sweep.alpha_lr=[0.03]"])
    lone = load(["env.target_entropy_coef=0.5", "alpha_lr=0.03"])
    second = points(swept)[1]
    assert point_name(second) == "alpha_lr=0.03,env.target_entropy_coef=0.5"
    assert to_dict(point_config(swept, second)) == to_dict(lone)


def test_each_value_owns_its_seeds_rows_of_the_programs_runs(tmp_path):
    cfg = from_dict({"num_seeds": 3, "sweep": {"alpha_lr": [0.03, 0.3], "lr": [1e-3, 5e-4]}})
    members = sweep_members(cfg, tmp_path)
    covered = np.concatenate([np.arange(run_count(cfg))[m.rows] for m in members])
    assert covered.tolist() == list(range(run_count(cfg)))  # in order, each run once
    values = run_values(cfg)
    for member in members:  # a value's rows carry that value's numbers
        assert np.allclose(values["alpha_lr"][member.rows], member.config.alpha_lr)
        assert np.allclose(values["lr"][member.rows], member.config.lr)
    lone = sweep_members(from_dict({"num_seeds": 2}), tmp_path)
    assert len(lone) == 1 and lone[0].rows == slice(0, 2) and lone[0].run_dir == tmp_path


def test_the_learner_reads_every_swept_key_from_its_hyperparameters():
    assert Hyperparameters._fields == tuple(key.rsplit(".", 1)[-1] for key in swept_keys())
    cfg = from_dict({"lr": 0.002, "env": {"target_entropy_coef": 0.4}})
    hyper = hyperparameters(cfg)
    assert hyper.lr == 0.002 and hyper.target_entropy_coef == 0.4 and hyper.alpha_at_start == cfg.alpha_at_start
    traced = hyperparameters(cfg, {"env.target_entropy_coef": 0.7, "alpha_lr": 0.05})
    assert traced.target_entropy_coef == 0.7 and traced.alpha_lr == 0.05 and traced.lr == 0.002


@pytest.mark.parametrize("key", swept_keys())
def test_every_swept_key_can_be_given_on_the_command_line(key):
    # Each key with values its algorithm reads (epsilon: an epsilon-greedy one).
    alg = "qmix" if key.startswith("epsilon") else "me_qmix"
    values = {"target_tau": "[0.01,0.02]", "fixed_alpha": "[0.01,0.02]"}.get(key, "[0.2,0.3]")
    cfg = load([f"alg={alg}", f"sweep.{key}={values}"])
    assert run_count(cfg) == 2
    second = point_config(cfg, points(cfg)[1])
    for part in key.split("."):
        second = getattr(second, part)
    assert second == float(values.strip("[]").split(",")[1])
