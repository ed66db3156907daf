import json

import pytest
import torch

from fer_bench.cli import main


@pytest.mark.parametrize("method", ["ce", "scn"])
def test_bench_runs_methods_without_relabeling_too(tmp_path, method):
    assert (
        main(
            [
                "bench",
                "--method",
                method,
                "--backbone",
                "test_resnet",
                "--image-size",
                "32",
                "--batch-size",
                "8",
                "--num-train",
                "16",
                "--num-test",
                "8",
                "--stored-size",
                "24",
                "--steps",
                "1",
                "--warmup",
                "1",
                "--device",
                "cpu",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_bench_bad_settings_are_one_line(capsys):
    assert main(["bench", "--steps", "0"]) == 2
    assert main(["bench", "--device", "foo"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "fer-bench: error: --steps must be >= 1",
        "fer-bench: error: --device must be auto, cpu, cuda or cuda:N, got 'foo'",
    ]


def test_bench_measures_ceiling_end_to_end_and_eval_on_cpu(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--method",
            "mtac",
            "--backbone",
            "test_resnet",
            "--image-size",
            "32",
            "--batch-size",
            "16",
            "--num-train",
            "64",
            "--num-test",
            "32",
            "--stored-size",
            "24",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "model-only ceiling" in printed and "end-to-end training" in printed
    record = json.loads(out.read_text())
    for key in ("model_only_img_s", "end_to_end_img_s", "eval_img_s", "peak_memory_gib"):
        assert record[key] > 0
    assert record["end_to_end_vs_ceiling"] == pytest.approx(
        record["end_to_end_img_s"] / record["model_only_img_s"], rel=1e-2
    )
    assert record["hardware"]["device"] == "cpu" and record["versions"]["torch"]
    assert record["command"].startswith("fer-bench bench --device cpu --method mtac")
    assert "--repeats 3" in record["command"]
    for key, figure in (
        ("model_only", "model_only_img_s"),
        ("end_to_end", "end_to_end_img_s"),
        ("eval", "eval_img_s"),
    ):  # each figure is the median of its three interleaved samples
        assert len(record["samples_img_s"][key]) == 3
        assert record[figure] == pytest.approx(sorted(record["samples_img_s"][key])[1], abs=0.1)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bench_on_gpu_uses_bf16(tmp_path):
    out = tmp_path / "bench.json"
    assert (
        main(
            [
                "bench",
                "--backbone",
                "resnet18",
                "--image-size",
                "112",
                "--batch-size",
                "128",
                "--num-train",
                "1024",
                "--num-test",
                "512",
                "--steps",
                "4",
                "--warmup",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    record = json.loads(out.read_text())
    assert record["precision"] == "bf16" and record["peak_memory_kind"] == "GPU memory allocated"
