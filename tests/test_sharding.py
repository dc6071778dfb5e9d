"""Seeds sharded over several devices compute exactly what one device computes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh process: the device count is fixed when JAX starts.
SCRIPT = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from meigm_jax.cli_config import load
    from meigm_jax.program import compile_program, to_host
    from meigm_jax.trainer import make_train

    cfg = load(["+env=matrix_game", "num_seeds=4", "total_timesteps=400", "test_interval=200",
                "hidden_dim=16", "mixer_embed=8", "hypernet_embed=16"])
    trainer = make_train(cfg)
    out = {"devices": len(jax.devices())}
    for name, devices in (("sharded", jax.devices()), ("single", jax.devices()[:1])):
        program = compile_program(trainer, devices)
        state, history = program.state, []
        for index in range(trainer.num_chunks):
            state, metrics = program.chunk(state, np.int32(index))
            history.append({k: np.asarray(v).tolist() for k, v in to_host(metrics)._asdict().items()})
        out[name] = {"mesh": int(program.mesh.devices.size), "history": history,
                     "shards": sorted({s.device.id for s in state.params.log_alpha.addressable_shards}),
                     "log_alpha": np.asarray(state.params.log_alpha).tolist()}
    json.dump(out, sys.stdout)
""")


def test_four_seeds_on_four_devices_match_one_device():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    sharded, single = out["sharded"], out["single"]
    assert sharded["mesh"] == 4 and sharded["shards"] == [0, 1, 2, 3]
    assert single["mesh"] == 1 and single["shards"] == [0]
    assert len(sharded["history"]) == 2
    # Same numbers up to float rounding: a device's vmap is 1 seed wide
    # instead of 4, which changes how XLA vectorises some sums.
    for a, b in zip(sharded["history"], single["history"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(np.asarray(a[key], float), np.asarray(b[key], float),
                                       rtol=1e-5, atol=1e-6, err_msg=key)
        assert a["env_steps"] == b["env_steps"] and a["updates"] == b["updates"]
    np.testing.assert_allclose(sharded["log_alpha"], single["log_alpha"], rtol=1e-5)
    # The four seeds are four different runs.
    assert len(set(sharded["log_alpha"])) == 4
