"""The command line: bad input fails fast in one line, errors map to their
exit codes, a multirun runs each alg (the SMAX run is in test_smax)."""

import json
import math
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from meigm_jax.train import main


# Overrides -> the key their one error line must name. segment.length=2 is
# longer than the matrix game's 1-step episodes; the matrix game has no preset;
# alpha_max=0.0001 is below the matrix game's init_alpha of 0.001. A sweep
# refuses keys that change shapes or code, values that would be different
# programs, and keys the algorithm never reads.
_BAD = """
+env=nope  ->  env
alg=nope  ->  alg
td_lambda=1.5  ->  td_lambda
batch_size=600 buffer_size=500  ->  batch_size
num_envs=0  ->  num_envs
misspelt_key=3  ->  misspelt_key
opt.layres=2  ->  opt.layres
opt.layers=3  ->  opt.layers
alg=me_qplex opt.layers=3  ->  opt.layers
opt.kind=fancy  ->  opt.kind
alg=qmix opt.kind=opt  ->  opt.kind
env=smax_5v5  ->  +env=smax_5v5
gamma=abc  ->  gamma
seed_loop=pmap  ->  seed_loop
env.reward_scale=0  ->  env.reward_scale
alg=qmix td_weighting=release  ->  td_weighting
alg=vdn premix.kind=residual  ->  premix.kind
alg=me_qmix_release alpha_lr=-1  ->  alpha_lr
segment.length=2  ->  segment.length
segment.burn_in=2  ->  segment.burn_in
agent.kind=feedforward segment.length=1 segment.burn_in=1  ->  segment.burn_in
agent.kind=lstm  ->  agent.kind
env_steps_per_update=-1  ->  env_steps_per_update
env.target_entropy_anneal_steps=0  ->  env.target_entropy_anneal_steps
preset=cpu  ->  preset
+env=overcooked_cramped_room preset=gpu  ->  preset
compile_cache=[1]  ->  compile_cache
target_entropy_scope=each  ->  target_entropy_scope
alpha_max=0.0001  ->  alpha_max
sweep.hidden_dim=[32,64]  ->  sweep.hidden_dim
sweep.batch_size=[8,16]  ->  sweep.batch_size
sweep.alpha_lr=[0.1,-1]  ->  alpha_lr
sweep.target_tau=[0,0.01]  ->  sweep.target_tau
alg=qmix sweep.alpha_lr=[0.1,0.3]  ->  sweep.alpha_lr
sweep.epsilon_finish=[0.1,0.2]  ->  sweep.epsilon_finish
sweep.lr=[0.1,0.2,0.3] sweep.alpha_lr=[0.1,0.2] sweep.mode=zip  ->  sweep.mode
sweep.mode=grid  ->  sweep.mode
sweep.lr=[]  ->  sweep.lr
sweep.lr=0.1  ->  sweep.lr
+env=smacv2_protoss_5v5 sweep.lr=[0.1,0.2]  ->  sweep
"""
BAD_INPUTS = [(args.split(), key) for args, key in (line.split("  ->  ") for line in _BAD.strip().splitlines())]


@pytest.mark.parametrize("args,key", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_2(args, key, capsys, tmp_path):
    run_dir = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(args + [f"hydra.run.dir={run_dir}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert key in err, err
    if not key.startswith("+"):
        assert "allowed" in err, err
    assert not run_dir.exists()


def test_unwritable_run_dir_is_one_line_and_exit_2(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SystemExit) as exc:
        main([f"hydra.run.dir={blocker / 'run'}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hydra.run.dir" in err[0] and "allowed" in err[0], err
    assert blocker.read_text() == "not a directory"


# The command with its run loop replaced by one that raises argv[1] (an
# expression over meigm_jax.errors); every other argument is the command's.
FAILING_RUN = """
import sys

from meigm_jax import errors
from meigm_jax import train

error = eval(sys.argv.pop(1), vars(errors))


def failing_run(cfg, run_dir, program=None):
    print("run called", flush=True)
    raise error


train.run = failing_run
train.main()
"""

RUN_FAILURES = [
    ('ConfigError("config error: resume=true but RUN holds no run")', 2,
     "config error: resume=true but RUN holds no run"),
    ('NonFiniteLoss("error: non-finite loss in seed_index 1 at update 7; run stopped, no checkpoint was saved yet")',
     3, "error: non-finite loss in seed_index 1 at update 7; run stopped, no checkpoint was saved yet"),
    ('HostLoopError("error: no worker could build its environment")', 1,
     "error: no worker could build its environment"),
    ('Interrupted("SIGTERM")', 130, "interrupted (SIGTERM); run stopped"),
]


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
@pytest.mark.parametrize("error,code,line", RUN_FAILURES, ids=[e.split("(")[0] for e, _, _ in RUN_FAILURES])
def test_an_error_of_the_run_loop_ends_the_command_in_its_line_and_exit_code(error, code, line, multirun,
                                                                              tmp_path):
    args = (["-m", "alg=qmix,me_qmix", f"hydra.sweep.dir={tmp_path / 'sweep'}"] if multirun
            else [f"hydra.run.dir={tmp_path / 'run'}"])
    proc = subprocess.run([sys.executable, "-c", FAILING_RUN, error, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == code, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines() == [line]
    assert proc.stdout.count("run called") == 1  # a sweep stops at its first failing job


def test_bad_input_subprocess_exit_code(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", "td_lambda=2",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "config error: td_lambda=2.0 is not allowed; allowed: a number in [0, 1]"]
    assert not (tmp_path / "run").exists()


def test_hydra_multirun_runs_each_alg(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", "-m", "alg=me_qmix,qmix",
                           "+env=matrix_game", "num_seeds=2", "total_timesteps=400",
                           "test_interval=200", "wandb.mode=disabled", f"hydra.sweep.dir={sweep}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    algs = {}
    for job in sorted(p for p in sweep.iterdir() if p.is_dir()):
        config = json.loads((job / "config.json").read_text())
        records = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert len(records) == 2 * 2 and all(math.isfinite(r["test_return"]) for r in records)
        algs[config["alg"]["name"]] = config["alg"]["policy"]
        # The matrix game ends with paper Table 1's layout, printed and saved.
        table = (job / "table1.md").read_text()
        assert table.startswith("Paper Table 1 after training: ") and "of 2 seeds" in table.splitlines()[0]
        assert "seed 0: greedy (" in table and "seed 1: greedy (" in table and "seed 2:" not in table
    assert proc.stdout.count("Paper Table 1 after training: ") == 2
    assert algs == {"me_qmix": "soft", "qmix": "epsilon_greedy"}


def test_wandb_online_without_login_is_one_line_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(WANDB_CONFIG_DIR=str(tmp_path / "cfg"), NETRC=str(tmp_path / "netrc"),
               HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", "wandb.mode=online",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.strip().splitlines() if "arn" not in line]
    assert len(lines) == 1 and "wandb.mode=offline" in lines[0], proc.stderr
    assert not (tmp_path / "run" / "config.json").exists()  # stopped before compiling or writing


def test_a_chunk_without_training_episodes_is_recorded_and_reported(tmp_path):
    """test_interval shorter than one rollout (8 one-step matrix games): every
    other chunk's end has already been passed, so it runs only its evaluation.
    Its train metrics are null, and the run goes on to the end."""
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "meigm_jax.train", "+env=matrix_game", "num_seeds=1",
                           "total_timesteps=32", "test_interval=4", "wandb.mode=disabled",
                           f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 8
    empty = [r for r in records if r["train_return"] is None]
    assert [r["env_steps"] for r in empty] == [8, 16, 24, 32]  # the rollout before reached them
    assert all(r["test_return"] is not None for r in records)
    assert proc.stdout.count("train_return      n/a") == len(empty)


def test_progress_line_without_training_episodes():
    from meigm_jax.config.compose import load
    from meigm_jax.running.console import progress_line

    cfg = load(["+env=matrix_game", "num_seeds=2"])
    records = [{"env_steps": 100, "test_return": 2.0, "train_return": None, "sps": 5.0},
               {"env_steps": 100, "test_return": 4.0, "train_return": None, "sps": 5.0}]
    line = progress_line(cfg.total_timesteps, False, records, 0.0, {})
    assert "train_return      n/a" in line and "test_return    3.000 ± 1.000" in line
    records[1]["train_return"] = 1.5
    assert "train_return    1.500" in progress_line(cfg.total_timesteps, False, records, 0.0, {})
