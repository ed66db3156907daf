"""Method options are typed, checked and complete before a run exists; noise rates are percentages."""

import pytest

from fer_bench.cli import main
from fer_bench.config import RunConfig, parse_noise_rate
from fer_bench.errors import FerBenchError
from fer_bench.options import OneOf, Range, parse_value, resolve_options
from fer_bench.registry import check_method_class, get_method_class
from fer_bench.runner import resolve_config
from fer_bench.sweep import parse_sweep


@pytest.mark.parametrize(
    "text, expected", [("False", False), ("TRUE", True), ("0", False), (1, True)]
)
def test_booleans_parse_in_any_case(text, expected):
    assert parse_value(text, True, "scn option relabel") is expected


def test_false_string_turns_relabeling_off():
    cfg = resolve_config(RunConfig(method="scn", method_options={"relabel": "False"}))
    assert cfg.method_options["relabel"] is False


@pytest.mark.parametrize(
    "options, message",
    [
        ({"rr_margin": "abc"}, "method 'scn' option rr_margin must be a number, got 'abc'"),
        ({"relabel": "maybe"}, "method 'scn' option relabel must be true or false"),
        ({"relabel_epoch": 2.5}, "relabel_epoch must be a whole number"),
        ({"beta": 1.5}, "beta=1.5 must be in (0, 1)"),
        ({"relabel_scope": "some"}, "relabel_scope='some' must be one of low, all"),
        ({"nope": 1}, "unknown option(s) nope for method 'scn'"),
    ],
)
def test_bad_method_options_fail_before_any_record(options, message, tmp_path):
    cfg = RunConfig(method="scn", method_options=options, output_dir=str(tmp_path))
    with pytest.raises(FerBenchError) as err:
        resolve_config(cfg)
    assert message in str(err.value)
    assert not any(tmp_path.iterdir())


def test_default_spelled_out_is_the_same_run():
    plain = resolve_config(RunConfig(method="scn", noise=20))
    spelled = resolve_config(
        RunConfig(method="scn", noise=20, method_options={"relabel_scope": "low", "beta": "0.7"})
    )
    assert plain.run_id() == spelled.run_id()
    assert plain.method_options["relabel_scope"] == "low"  # the defaults are in the record


def test_cli_bool_option_is_one_line_exit_2(tmp_path, capsys):
    code = main(["run", "--method", "scn", "-M", "relabel=perhaps", "--output-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "relabel must be true or false" in err[0]


@pytest.mark.parametrize("value", [0.2, "0.5", 0.999])
def test_fraction_like_noise_is_refused_with_a_suggestion(value):
    with pytest.raises(FerBenchError, match="did you mean"):
        parse_noise_rate(value)


def test_explicit_percent_and_whole_rates_pass():
    assert parse_noise_rate("0.2%") == 0.2
    assert parse_noise_rate(20) == 20.0 and parse_noise_rate("0") == 0.0


def test_cli_and_sweep_refuse_fraction_noise(tmp_path, capsys):
    assert main(["run", "--noise", "0.2", "--output-dir", str(tmp_path)]) == 2
    assert "did you mean 20?" in capsys.readouterr().err
    with pytest.raises(FerBenchError, match="did you mean 30"):
        parse_sweep({"grid": {"noise": [0, 0.3]}})
    assert parse_sweep({"grid": {"noise": "0.5%"}}).configs[0].noise == 0.5


def test_register_refuses_positional_options_and_missing_recipe():
    class Positional:
        recipe = {"epochs": 1}

        def __init__(self, backbone, num_features, info, q=0.7):
            pass

    with pytest.raises(FerBenchError, match="q must be keyword-only"):
        check_method_class("gce2", Positional)

    class NoRecipe:
        def __init__(self, backbone, num_features, info, *, q=0.7):
            pass

    with pytest.raises(FerBenchError, match="has no recipe"):
        check_method_class("gce2", NoRecipe)


def test_declared_checks_cover_every_builtin_option_name():
    # A check that names no option is a typo that would silently check nothing.
    from fer_bench.options import declared_options
    from fer_bench.registry import list_methods

    for name in list_methods():
        cls = get_method_class(name)
        assert set(getattr(cls, "checks", {})) <= set(declared_options(cls)), name


def test_range_and_oneof_messages():
    assert Range(0, 1, low_open=True).problem(0) == "must be in (0, 1]"
    assert OneOf(("a", "b")).problem("c") == "must be one of a, b"
    assert resolve_options(get_method_class("ce"), {}, "method 'ce'") == {
        "dropout": 0.0,
        "label_smoothing": 0.0,
    }


def test_an_option_defaulting_to_none_is_typed_by_its_annotation():
    cls = get_method_class("coteaching")
    assert resolve_options(cls, {"forget_rate": "0.3"}, "m")["forget_rate"] == 0.3
    assert resolve_options(cls, {"forget_rate": "none"}, "m")["forget_rate"] is None
    with pytest.raises(FerBenchError, match="forget_rate must be a number, got 'abc'"):
        resolve_options(cls, {"forget_rate": "abc"}, "m")
