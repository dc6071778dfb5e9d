"""meigm_jax.running.wandb_log: one offline W&B run per seed, read back from disk."""

import json
import struct
import sys
from pathlib import Path

import pytest

from meigm_jax.running.wandb_log import WandbError, WandbLogger, default_group, metrics_to_log, run_id
from helpers import ROOT


CONFIG = {
    "alg": {"name": "me_qmix"},
    "env": {"name": "smax_5v5"},
    "seed": 7,
    "num_seeds": 2,
    "wandb": {"mode": "offline", "project": "meigm_jax", "entity": None, "group": None,
              "tags": []},
}


@pytest.fixture(autouse=True)
def _quiet_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DIR", raising=False)
    # wandb writes settings/cache under HOME-derived dirs; keep them in tmp.
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "_wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "_wandb_cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "_wandb_data"))


def _records(k: int) -> list[dict]:
    """Evaluation k for both seeds, as train.metric_records writes them."""
    out = []
    for i in range(2):
        out.append({
            "seed": 7, "seed_index": i, "env_steps": 1000 * (k + 1) + i, "updates": 10 * (k + 1),
            "test_return": 1.5 * k + 10 * i, "test_win_rate": 0.25 * k, "test_length": 50 + k,
            "train_return": 0.5 * k, "loss_q": 1.0 / (k + 1), "loss_opt": None,
            "alpha": 0.2 - 0.01 * k, "policy_entropy": 1.1, "epsilon": None, "q_tot": 3.0 + i,
            "misalignment_gap": 0.01 * i, "misalignment_gap_expected": None,
            "sps": 1234.5, "wall_s": 2.0 * k,
        })
    return out


# --- reading an offline run back -------------------------------------------
# wandb 0.31 has no Python reader for its transaction log any more (the old
# wandb.sdk.internal.datastore is gone with the Go core), so the test decodes
# it: a 7-byte header (b":W&B", 2-byte magic, version) and then LevelDB-log
# framing in 32 KiB blocks, each record chunk a 7-byte header (crc32c, little
# endian uint16 length, type 1 full / 2 first / 3 middle / 4 last) and its
# bytes; a whole record is one serialized wandb_internal_pb2.Record.
_BLOCK = 32 * 1024


def _read_transaction_log(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    out, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0:  # zero fill to the end of the block
            pos += left - 7 - length
            continue
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            out.append(record)
            pending = b""
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
    return out


def _item_key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(run_path: Path) -> dict:
    """{"config": {...}, "history": [{key: value}, ...], "run": RunRecord} of one offline run."""
    (log,) = run_path.glob("run-*.wandb")
    config, history, run = {}, [], None
    for record in _read_transaction_log(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            for item in record.run.config.update:
                config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                config[_item_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            history.append({_item_key(i): json.loads(i.value_json) for i in record.history.item})
    return {"config": config, "history": history, "run": run}


# --- tests -----------------------------------------------------------------

def test_offline_one_run_per_seed_with_config_and_history(tmp_path):
    run_dir = tmp_path / "run"
    logger = WandbLogger(CONFIG, run_dir, num_seeds=2, mode="offline", project="meigm_jax",
                         entity=None, group=None, tags=("test", "smax"))
    evaluations = [_records(k) for k in range(3)]
    for records in evaluations:
        logger.log(records)
    logger.finish()
    logger.finish()  # idempotent

    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2, runs
    read = [read_offline_run(p) for p in runs]
    read.sort(key=lambda r: r["config"]["seed_index"])
    expected_group = default_group(run_dir)
    for i, got in enumerate(read):
        cfg = got["config"]
        assert cfg["seed_index"] == i
        assert cfg["alg"] == {"name": "me_qmix"} and cfg["env"] == {"name": "smax_5v5"}
        assert cfg["seed"] == 7 and cfg["num_seeds"] == 2
        run = got["run"]
        assert run.display_name == f"me_qmix-smax_5v5-seed{7 + i}"
        assert run.run_group == expected_group
        assert run.project == "meigm_jax"
        assert list(run.tags) == ["test", "smax"]
        # A stable id per (run dir, seed): a resumed run continues the same W&B run.
        assert run.run_id == run_id(run_dir, i) and run_id(run_dir, i) != run_id(run_dir, 1 - i)

        history = got["history"]
        assert len(history) == 3
        for k, row in enumerate(history):
            want = evaluations[k][i]
            # every numeric non-null value, nothing else (W&B adds _step, _runtime, _timestamp)
            logged = {key: v for key, v in row.items() if not key.startswith("_")}
            assert logged == {key: v for key, v in want.items()
                              if v is not None and key not in ("seed", "seed_index")}
            assert row["env_steps"] == 1000 * (k + 1) + i
            assert row["test_return"] == pytest.approx(1.5 * k + 10 * i)
            assert row["alpha"] == pytest.approx(0.2 - 0.01 * k)
            assert row["test_win_rate"] == pytest.approx(0.25 * k)
            assert "loss_opt" not in row and "epsilon" not in row


def test_charts_keyed_by_env_steps(tmp_path):
    run_dir = tmp_path / "run"
    logger = WandbLogger(CONFIG, run_dir, num_seeds=1, mode="offline", project="p",
                         entity=None, group="my-group", tags=())
    logger.log(_records(0)[:1])
    logger.finish()
    (path,) = (run_dir / "wandb").glob("offline-run-*")
    (log,) = path.glob("run-*.wandb")
    metrics = [r.metric for r in _read_transaction_log(log) if r.WhichOneof("record_type") == "metric"]
    assert any(m.glob_name == "*" and m.step_metric == "env_steps" for m in metrics)
    assert read_offline_run(path)["run"].run_group == "my-group"


def test_two_loggers_in_one_process(tmp_path):
    first = WandbLogger(CONFIG, tmp_path / "a", 1, "offline", "p", None, None, ())
    second = WandbLogger(CONFIG, tmp_path / "b", 1, "offline", "p", None, None, ())
    first.log(_records(0)[:1])
    first.finish()  # must not end the second logger's run
    second.log(_records(1)[:1])
    second.finish()
    for name, k in (("a", 0), ("b", 1)):
        (path,) = (tmp_path / name / "wandb").glob("offline-run-*")
        (row,) = read_offline_run(path)["history"]
        assert row["env_steps"] == 1000 * (k + 1)


def test_disabled_writes_nothing_and_never_imports_wandb(tmp_path):
    import subprocess

    run_dir = tmp_path / "run"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from meigm_jax.running.wandb_log import WandbLogger\n"
        f"lg = WandbLogger({{'alg': {{'name': 'qmix'}}}}, Path({str(run_dir)!r}), 2, 'disabled',"
        " 'p', None, None, ())\n"
        "lg.log([{'seed_index': 0, 'env_steps': 1, 'test_return': 1.0}])\n"
        "lg.finish()\n"
        "assert 'wandb' not in sys.modules, 'wandb imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    assert not run_dir.exists()
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith("_wandb")] == []


def test_online_without_credentials_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_IDENTITY_TOKEN_FILE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(WandbError) as info:
        WandbLogger(CONFIG, tmp_path / "run", 1, "online", "p", None, None, ())
    message = str(info.value)
    assert "\n" not in message
    assert "WANDB_API_KEY" in message and "wandb.mode=offline" in message
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / "run" / "wandb").exists()


def test_bad_mode_and_bad_seed_index(tmp_path):
    with pytest.raises(WandbError, match="offline, online, disabled"):
        WandbLogger(CONFIG, tmp_path, 1, "dryrun", "p", None, None, ())
    logger = WandbLogger(CONFIG, tmp_path / "run", 1, "offline", "p", None, None, ())
    try:
        with pytest.raises(ValueError, match="seed_index 1"):
            logger.log([{"seed_index": 1, "env_steps": 5, "test_return": 0.0}])
    finally:
        logger.finish()


def test_metrics_to_log_filters_non_numeric():
    rec = {"seed": 0, "seed_index": 1, "env_steps": 10, "a": 1.5, "b": None, "c": "x",
           "d": True, "e": float("nan")}
    assert metrics_to_log(rec) == {"env_steps": 10, "a": 1.5}
