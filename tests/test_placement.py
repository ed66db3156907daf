"""Training data on the device or streamed from host memory: same batches, chosen by measurement."""

import json

import numpy as np
import pytest
import torch

from fer_bench.cli import build_parser
from fer_bench.cli_run import config_from_args
from fer_bench.config import RunConfig
from fer_bench.errors import FerBenchError
from fer_bench.placement import Placement, choose_placement, make_feed
from fer_bench.registry import create_dataset
from fer_bench.runner import build_method, prepare_data, resolve_config, run_experiment
from fer_bench.trainer import Trainer

GIB = 1 << 30
CPU = torch.device("cpu")


def _without_timing(record):
    timing = ("seconds", "images_per_s")
    return [
        {**e, "train": {k: v for k, v in e["train"].items() if k not in timing}}
        for e in record["history"]
    ]


def test_host_placement_run_equals_device_placement_run_on_cpu(tiny_run_config, tmp_path):
    """Same seed, two paths: identical per-epoch losses, metrics and diagnostics, one run id."""
    runs = {
        placement: run_experiment(
            tiny_run_config(
                method="ce",
                noise=20,
                epochs=2,
                data_placement=placement,
                output_dir=str(tmp_path / placement),
            )
        )
        for placement in ("device", "host")
    }
    device, host = runs["device"], runs["host"]
    assert device["status"] == host["status"] == "done"
    assert device["run_id"] == host["run_id"]  # an execution setting, not part of the run
    assert device["data_placement"]["placement"] == "device"
    assert host["data_placement"] == {
        "placement": "host",
        "requested": "host",
        "reason": "--data-placement host",
        "set_bytes": device["data_placement"]["set_bytes"],
        "free_bytes": None,
        "need_bytes": None,
        "staging": None,
    }
    assert _without_timing(device) == _without_timing(host)
    assert [e["train"]["loss"] for e in device["history"]] == [
        e["train"]["loss"] for e in host["history"]
    ]
    assert device["final"] == host["final"] and device["diagnostics"] == host["diagnostics"]


def _trainer(cfg, device=CPU):
    cfg = resolve_config(cfg)
    data = create_dataset(cfg.dataset, **cfg.dataset_options)
    train_data, _, _ = prepare_data(cfg, data)
    return Trainer(cfg, build_method(cfg, data, train_data.train), train_data, device)


def test_scan_train_and_evaluation_agree_across_placements(tiny_run_config):
    """The whole-set pass methods use between epochs (DivideMix) reads the same images."""
    scans, preds = {}, {}
    for placement in ("device", "host"):
        trainer = _trainer(tiny_run_config(method="ce", data_placement=placement))
        scans[placement] = trainer.scan_train(
            lambda x, labels, idx: torch.cat([x.mean((1, 2, 3))[:, None], idx[:, None]], 1),
            batch_size=50,
        )
        preds[placement] = trainer.predict_split(trainer.data.test, batch_size=32)
    assert scans["device"].shape == (len(trainer.data.train), 2)
    assert torch.equal(scans["device"][:, 1], torch.arange(len(trainer.data.train)).float())
    assert torch.equal(scans["device"], scans["host"])
    assert torch.equal(preds["device"], preds["host"])


def test_neither_path_copies_a_memory_mapped_set(tmp_path):
    """A prepared cache stays memory-mapped (never read into RAM as a whole) on both paths, and
    both feed the same rows of a held-out subset, whole and in part."""
    path = tmp_path / "images.npy"
    written = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(50, 3, 4, 4))
    written[:] = np.arange(50, dtype=np.uint8)[:, None, None, None]
    written.flush()
    del written
    mapped = torch.from_numpy(np.load(path, mmap_mode="c"))
    rows = torch.arange(49, -1, -2)  # a subset of the rows, reversed
    order = torch.randperm(25, generator=torch.Generator().manual_seed(0))
    for name in ("device", "host"):
        feed = make_feed(Placement(name, name, "test", mapped.nbytes), mapped, rows, CPU)
        assert feed.images.data_ptr() == mapped.data_ptr()
        batches = list(feed.train_batches(order, 8, 3))
        assert [len(idx) for idx, _ in batches] == [8, 8, 8]
        for idx, raw in batches:
            assert torch.equal(raw, mapped[rows[idx]])
        scanned = list(feed.in_order(25, 10))
        assert torch.equal(torch.cat([idx for idx, _ in scanned]), torch.arange(25))
        assert torch.equal(torch.cat([raw for _, raw in scanned]), mapped[rows])
        for _ in feed.train_batches(order, 8, 3):
            break  # left early: the prefetched batch is dropped and the next pass starts clean
        assert torch.equal(next(iter(feed.in_order(25, 10)))[1], mapped[rows[:10]])


@pytest.fixture
def free_memory(monkeypatch):
    """Mock ``torch.cuda.mem_get_info``: ``free_memory(n)`` sets the free bytes it reports."""
    state = {"free": 0, "asked": 0}

    def mem_get_info(device=None):
        state["asked"] += 1
        return state["free"], 80 * GIB

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)

    def set_free(n):
        state["free"] = n
        return state

    return set_free


def test_auto_picks_host_when_the_set_exceeds_free_device_memory(free_memory):
    cuda = torch.device("cuda")
    measured = []

    def need():
        measured.append(1)
        return 3 * GIB

    free_memory(20 * GIB)
    # AffectNet at 224 px (~43 GB) on a GPU with 20 GiB free: host, without measuring a step.
    big = choose_placement("auto", cuda, 43 * GIB, need)
    assert big.placement == "host" and big.free_bytes == 20 * GIB and not measured
    assert "larger than the free device memory (20.00 GiB)" in big.reason
    # Fits in free memory, but not beside the model, optimizer and a batch: host.
    close = choose_placement("auto", cuda, 18 * GIB, need)
    assert close.placement == "host" and close.need_bytes == 3 * GIB and measured == [1]
    assert "does not fit" in close.reason
    # RAF-DB at 224 px (~1.8 GB): device, the fast path.
    small = choose_placement("auto", cuda, int(1.8 * GIB), need)
    assert small.placement == "device" and small.to_record()["need_bytes"] == 3 * GIB
    assert "fits in the free device memory" in small.reason


def test_forced_placement_and_cpu_never_measure(free_memory):
    state = free_memory(1)

    def need():
        raise AssertionError("measured a forced or CPU placement")

    cuda = torch.device("cuda")
    assert choose_placement("device", cuda, 43 * GIB, need).placement == "device"
    assert choose_placement("host", cuda, 1, need).placement == "host"
    on_cpu = choose_placement("auto", CPU, 43 * GIB, need)
    assert on_cpu.placement == "device" and "CPU" in on_cpu.reason
    assert state["asked"] == 0
    with pytest.raises(FerBenchError, match="--data-placement must be one of auto, device, host"):
        choose_placement("gpu", cuda, 1, need)


def test_data_placement_flag_is_an_execution_setting():
    parser = build_parser()
    args = parser.parse_args(["run", "--data-placement", "host"])
    cfg = config_from_args(args)
    assert cfg.data_placement == "host"
    assert cfg.run_id() == config_from_args(parser.parse_args(["run"])).run_id()
    with pytest.raises(FerBenchError, match="--data-placement must be one of"):
        RunConfig(data_placement="gpu").validate()


def test_bench_times_both_placements_interleaved(tmp_path, capsys):
    from fer_bench.cli import main

    out = tmp_path / "bench.json"
    args = ["bench", "--method", "ce", "--backbone", "test_resnet", "--image-size", "24"]
    args += ["--batch-size", "8", "--num-train", "16", "--num-test", "8", "--stored-size", "16"]
    args += ["--steps", "1", "--warmup", "1", "--device", "cpu", "--data-placement", "both"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "host placement" in printed and "host / device placement" in printed
    record = json.loads(out.read_text())
    assert set(record["placements"]) == {"device", "host"}
    assert record["command"].endswith("--data-placement both")
    assert len(record["samples_img_s"]["end_to_end_host"]) == 3
    host, device = (record["placements"][k]["end_to_end_img_s"] for k in ("host", "device"))
    assert record["host_vs_device"] == pytest.approx(host / device, rel=1e-3)
    assert record["end_to_end_img_s"] == device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_host_stream_hands_over_exact_batches_while_the_device_is_busy():
    """Copies on the side stream, one ahead, while the training stream runs long kernels:
    every batch must arrive whole (wait_event) and stay valid (record_stream)."""
    from fer_bench.placement import HostStream

    cuda = torch.device("cuda")
    images = torch.randint(0, 256, (4096, 3, 64, 64), dtype=torch.uint8)
    rows = torch.randperm(4096)
    chunks = list(torch.arange(4096).split(256))
    busy = torch.randn(4096, 4096, device=cuda)
    stream = HostStream(cuda)
    got = []
    for raw in stream.batches(images, rows, chunks):
        for _ in range(4):
            busy = (busy @ busy).tanh_()  # keep the training stream busy during the next copy
        got.append(raw.sum((1, 2, 3)))
    expected = images[rows].to(cuda).sum((1, 2, 3)).split(256)
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a, b)
    assert stream.pinned is True


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_host_placement_trains_like_device_placement(tiny_run_config, tmp_path):
    runs = {
        p: run_experiment(
            tiny_run_config(
                method="scn",
                device="cuda",
                epochs=2,
                data_placement=p,
                output_dir=str(tmp_path / p),
            )
        )
        for p in ("auto", "host")
    }
    auto, host = runs["auto"], runs["host"]
    assert auto["status"] == host["status"] == "done"
    # A tiny set fits: auto measured and kept it on the device; the host path pins its buffers.
    assert auto["data_placement"]["placement"] == "device"
    assert auto["data_placement"]["need_bytes"] > 0 and auto["data_placement"]["free_bytes"] > 0
    assert host["data_placement"]["staging"] == "pinned"
    # Same batches; cuDNN's kernels may still differ in the last bits from run to run.
    for a, b in zip(auto["history"], host["history"], strict=True):
        assert b["train"]["loss"] == pytest.approx(a["train"]["loss"], rel=1e-2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_need_probe_leaves_no_trace(tiny_run_config):
    from fer_bench.placement import measure_training_need

    cuda = torch.device("cuda")
    trainer = _trainer(tiny_run_config(method="scn", device="cuda"), cuda)
    before = {k: v.clone() for k, v in trainer.method.state_dict().items()}
    rng = torch.cuda.get_rng_state(cuda)
    need = measure_training_need(
        trainer.method, trainer.cfg, trainer.data.train.images.shape[1:], cuda, trainer._autocast
    )
    assert need > 1 << 30  # the reserve alone is 1 GiB
    assert all(torch.equal(before[k], v) for k, v in trainer.method.state_dict().items())
    assert all(p.grad is None for p in trainer.method.parameters())
    assert torch.equal(rng, torch.cuda.get_rng_state(cuda))
