"""Seeds sharded over several devices compute what each seed computes alone."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from conftest import FAST_COMPILE_FLAGS
from helpers import ROOT


# Runs in a fresh process: the device count is fixed when JAX starts.
SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from meigm_jax.config.compose import load
    from meigm_jax.programs.program import compile_program, to_host
    from meigm_jax.algorithm.seeds import seed_keys
    from meigm_jax.programs.jax_trainer import make_train

    cfg = load(["+env=matrix_game", "num_seeds=4", "total_timesteps=400", "test_interval=200",
                "hidden_dim=16", "mixer_embed=8", "hypernet_embed=16"])
    trainer = make_train(cfg)

    def train(keys, devices):
        program = compile_program(trainer, devices, keys)
        state, history = program.state, []
        for index in range(trainer.num_chunks):
            state, metrics = program.chunk(state, np.int32(index))
            history.append({k: np.asarray(v).tolist() for k, v in to_host(metrics)._asdict().items()})
        shards = sorted({s.device.id for s in state.params.log_alpha.addressable_shards})
        return {"mesh": int(program.mesh.devices.size), "history": history, "shards": shards,
                "log_alpha": np.asarray(state.params.log_alpha).tolist()}

    keys = seed_keys(cfg)
    out = {"devices": len(jax.devices()), "sharded": train(keys, jax.devices()),
           "alone": [train(keys[i:i + 1], jax.devices()[:1]) for i in range(4)]}
    json.dump(out, sys.stdout)
""")


def test_four_seeds_on_four_devices_match_each_seed_alone():
    env = {**os.environ, "XLA_FLAGS": f"{FAST_COMPILE_FLAGS} --xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    sharded = out["sharded"]
    assert sharded["mesh"] == 4 and sharded["shards"] == [0, 1, 2, 3]
    assert len(sharded["history"]) == 2
    # Each device runs one seed as a vmap of width 1, as that seed run alone
    # on one device: the same numbers up to float rounding (XLA's CPU thread
    # split of a reduction differs between the two programs: ~1 ulp per step).
    for i, alone in enumerate(out["alone"]):
        assert alone["mesh"] == 1 and alone["shards"] == [0]
        for chunk, single in zip(sharded["history"], alone["history"], strict=True):
            assert chunk["env_steps"][i] == single["env_steps"][0]
            assert chunk["updates"][i] == single["updates"][0]
            for key, values in chunk.items():
                np.testing.assert_allclose(np.asarray(values[i], float), np.asarray(single[key][0], float),
                                           rtol=1e-5, atol=1e-5, err_msg=f"seed {i} {key}")
        np.testing.assert_allclose(sharded["log_alpha"][i], alone["log_alpha"][0], rtol=1e-5)
    assert len(set(sharded["log_alpha"])) == 4  # four different runs
