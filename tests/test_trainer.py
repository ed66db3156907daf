"""The trainer learns on CPU, is reproducible, and resumes exactly after an interruption."""

import json
import shutil

import pytest
import torch
from resume_helpers import trainer_for

from fer_bench.errors import FerBenchError
from fer_bench.runner import RunFailed, run_experiment
from fer_bench.trainer import Trainer, pick_device

_trainer = trainer_for


def test_ce_learns_well_above_chance_on_cpu(tiny_run_config):
    cfg = tiny_run_config(
        method="ce", epochs=8, dataset_options={"num_train": 700, "num_test": 200, "size": 32}
    )
    record = run_experiment(cfg)
    assert record["status"] == "done"
    acc = record["final"]["last"]["test"]["accuracy"]
    assert acc > 30.0, acc  # chance is 14.3 %
    losses = [e["train"]["loss"] for e in record["history"]]
    assert losses[-1] < losses[0]


def test_same_config_and_seed_give_the_same_result(tiny_run_config, tmp_path):
    a = run_experiment(tiny_run_config(method="scn", noise=20, output_dir=str(tmp_path / "a")))
    b = run_experiment(tiny_run_config(method="scn", noise=20, output_dir=str(tmp_path / "b")))
    assert a["run_id"] == b["run_id"]

    def strip(r):
        timing = ("seconds", "images_per_s")
        return [{k: v for k, v in e["train"].items() if k not in timing} for e in r["history"]]

    assert strip(a) == strip(b)
    assert a["final"]["last"]["test"] == b["final"]["last"]["test"]
    assert a["diagnostics"] == b["diagnostics"]


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_run_config, tmp_path):
    cfg = tiny_run_config(method="scn", noise=30, epochs=4, method_options={"relabel_epoch": 2})
    full = _trainer(cfg)
    full_state = full.fit()

    class Killed(Exception):
        pass

    def kill_after_two(state):
        if state.epoch == 2:
            raise Killed

    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(Killed):
        _trainer(cfg, ckpt, kill_after_two).fit()
    resumed = _trainer(cfg, ckpt)
    assert resumed.load_checkpoint() and resumed.state.epoch == 2
    resumed_state = _trainer(cfg, ckpt).fit()
    assert len(resumed_state.history) == 4
    for a, b in zip(full_state.history, resumed_state.history, strict=True):
        assert a["train"]["loss"] == b["train"]["loss"]
        assert a["test"] == b["test"] and a["diagnostics"] == b["diagnostics"]


def test_rerun_of_a_done_run_returns_the_record_without_training(tiny_run_config, monkeypatch):
    cfg = tiny_run_config(method="ce", epochs=1)
    first = run_experiment(cfg)
    monkeypatch.setattr(Trainer, "fit", lambda self: pytest.fail("retrained a finished run"))
    assert run_experiment(cfg)["finished_at"] == first["finished_at"]


def test_failed_run_is_recorded_as_failed(tiny_run_config, tmp_path, monkeypatch):
    cfg = tiny_run_config(method="ce", epochs=1)

    def boom(self):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(Trainer, "fit", boom)
    with pytest.raises(RunFailed, match="simulated"):
        run_experiment(cfg)
    records = list((tmp_path / "runs").glob("*/record.json"))
    assert len(records) == 1
    record = json.loads(records[0].read_text())
    assert record["status"] == "failed"
    assert record["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert "Traceback" in record["traceback"]


def test_interrupted_run_is_recorded_as_interrupted_and_resumes(
    tiny_run_config, tmp_path, monkeypatch
):
    """Ctrl-C (or Slurm's stop signal, SystemExit) is recorded, not mistaken for a failure."""
    cfg = tiny_run_config(method="ce", epochs=1)
    real_fit = Trainer.fit

    def stop(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", stop)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    (path,) = (tmp_path / "runs").glob("*/record.json")
    record = json.loads(path.read_text())
    assert record["status"] == "interrupted" and record["error"] == "KeyboardInterrupt"
    monkeypatch.setattr(Trainer, "fit", real_fit)
    assert run_experiment(cfg)["status"] == "done"


@pytest.mark.parametrize(("signalled", "status"), [(False, "failed"), (True, "interrupted")])
def test_system_exit_is_a_stop_only_after_a_stop_signal(
    tiny_run_config, tmp_path, monkeypatch, signalled, status
):
    """Slurm's stop signal ends in SystemExit; a library calling sys.exit(1) is a failure."""
    from fer_bench import stopping

    monkeypatch.setattr(stopping, "_stop_signalled", signalled)

    def leave(self):
        raise SystemExit(1)

    monkeypatch.setattr(Trainer, "fit", leave)
    with pytest.raises(SystemExit):
        run_experiment(tiny_run_config(method="ce", epochs=1))
    (path,) = (tmp_path / "runs").glob("*/record.json")
    assert json.loads(path.read_text())["status"] == status


def test_record_holds_config_versions_commit_hardware_and_metrics(tiny_run_config):
    record = run_experiment(
        tiny_run_config(method="mtac", noise=20, epochs=2, method_options={"relabel_epoch": 1})
    )
    assert record["config"]["seed"] == 0 and record["config"]["lr"] == 1e-3  # from the recipe
    assert record["versions"]["torch"] and "commit" in record["git"]
    assert record["hardware"]["device"] == "cpu"
    last = record["final"]["last"]["test"]
    assert set(last) >= {
        "accuracy",
        "mean_class_accuracy",
        "macro_f1",
        "per_class_accuracy",
        "confusion",
    }
    assert sum(map(sum, last["confusion"])) == record["dataset"]["num_test"]
    diag = record["diagnostics"]
    assert 0 <= diag["given_label_auc"] <= 1 and 0 <= diag["weight_auc"] <= 1
    assert set(diag["relabel"]) >= {"changed", "restored", "corrupted", "precision", "from_to"}
    assert record["noise"]["rate_actual"] == pytest.approx(20, abs=1)
    assert record["final"]["selected"]["epoch"] in (1, 2)
    # the record says what its numbers mean and what validation is measured against
    assert "percent" in record["units"]["accuracy"] and "[0, 1]" in record["units"]["auc"]
    assert record["units"]["confusion"].startswith("rows are true classes")
    assert record["dataset"]["val_labels"] == "noisy"  # the synthetic set: held out, noisy


def test_pretrained_weights_load_strictly(tmp_path):
    from fer_bench.backbones import create_backbone

    model, _ = create_backbone("test_resnet")
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, good)
    loaded, _ = create_backbone("test_resnet", str(good))
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), loaded.state_dict().values(), strict=True)
    )
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(FerBenchError, match="does not fit the backbone"):
        create_backbone("test_resnet", str(bad))
    with pytest.raises(FerBenchError, match="no such file"):
        create_backbone("test_resnet", str(tmp_path / "missing.pth"))


def test_cuda_device_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(FerBenchError, match="no CUDA device"):
        pick_device("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_fast_path_trains(tiny_run_config):
    record = run_experiment(tiny_run_config(method="scn", device="cuda", epochs=2))
    assert record["status"] == "done" and record["hardware"]["gpu"]


def test_checkpoint_from_another_device_type_is_a_clear_error(tiny_run_config, tmp_path):
    cfg = tiny_run_config(method="ce", epochs=1)
    ckpt = tmp_path / "ckpt.pt"
    trainer = _trainer(cfg, ckpt)
    trainer.fit()
    state = torch.load(ckpt, weights_only=True)
    state["device_type"] = "cuda"
    torch.save(state, ckpt)
    with pytest.raises(FerBenchError, match="written on cuda; resume it with --device cuda"):
        _trainer(cfg, ckpt).load_checkpoint()


def test_val_fraction_zero_trains_on_the_whole_training_set(tiny_run_config):
    record = run_experiment(tiny_run_config(method="scn", epochs=2, val_fraction=0))
    assert record["dataset"]["num_train"] == 240 and record["dataset"]["num_val"] == 0
    assert record["final"]["selected"]["epoch"] == 2
    assert record["final"]["selection"].startswith("none")


@pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")),
    reason="torch.compile on CPU needs a C compiler",
)
def test_compiled_run_matches_eager_and_saves_plain_checkpoints(tiny_run_config, tmp_path):
    """``--compile`` is the fast path's default on GPUs; on CPU the same code path compiles too
    (about a minute here). Its losses must be the eager ones up to float reordering, and its
    checkpoints must load into an eager model (no ``_orig_mod.`` keys)."""
    eager = run_experiment(tiny_run_config(method="scn", epochs=2))
    compiled = run_experiment(
        tiny_run_config(
            method="scn",
            epochs=2,
            compile=True,
            keep_checkpoint=True,
            output_dir=str(tmp_path / "c"),
        )
    )
    assert compiled["status"] == "done", compiled.get("error")
    for a, b in zip(eager["history"], compiled["history"], strict=True):
        assert b["train"]["loss"] == pytest.approx(a["train"]["loss"], rel=1e-4)
    run_dir = tmp_path / "c" / compiled["run_id"]
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    keys = [k for part in state.values() if isinstance(part, dict) for k in part]
    assert keys and not any("_orig_mod" in k for k in keys)
    weights = torch.load(run_dir / "final_weights.pt", weights_only=True)
    assert weights and not any("_orig_mod" in k for k in weights)
