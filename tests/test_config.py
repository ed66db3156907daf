import pytest

from fer_bench.config import RunConfig
from fer_bench.errors import FerBenchError
from fer_bench.runner import resolve_config


def test_run_id_ignores_number_spelling_and_execution_fields():
    a = RunConfig(noise=20, lr="1e-3", output_dir="x", device="cpu", compile=True)
    b = RunConfig(noise=20.0, lr=0.001, output_dir="y", device="auto")
    assert a.run_id() == b.run_id()
    assert RunConfig(noise=20, seed=1).run_id() != RunConfig(noise=20, seed=2).run_id()


def test_resolution_layers_method_recipe_then_dataset_defaults_then_user():
    cfg = resolve_config(RunConfig(method="scn", dataset="synthetic"))
    assert cfg.batch_size == 64 and cfg.lr == 1e-3  # SCN's official recipe
    assert cfg.epochs == 12 and cfg.image_size == 48  # the synthetic set's run defaults
    assert resolve_config(RunConfig(method="scn", epochs=3)).epochs == 3  # the user wins


@pytest.mark.parametrize("field, value", [("epochs", 2.5), ("seed", "x"), ("noise", "lots")])
def test_non_numbers_are_clear_errors(field, value):
    with pytest.raises(FerBenchError, match=field):
        RunConfig(**{field: value})


def test_unknown_keys_are_named():
    with pytest.raises(FerBenchError, match="unknown run option.*epochz"):
        RunConfig.from_dict({"epochz": 3})


def test_pretrained_weights_enter_the_run_id_by_content(tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"weights-1")
    b.write_bytes(b"weights-1")
    assert RunConfig(pretrained=str(a)).run_id() == RunConfig(pretrained=str(b)).run_id()
    b.write_bytes(b"weights-2")
    assert RunConfig(pretrained=str(a)).run_id() != RunConfig(pretrained=str(b)).run_id()
