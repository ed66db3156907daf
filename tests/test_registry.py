import pytest

from fer_bench.errors import FerBenchError
from fer_bench.registry import (
    METHODS,
    Registry,
    create_dataset,
    dataset_run_defaults,
    list_datasets,
    list_methods,
)


def test_builtin_methods_and_datasets_list_themselves():
    assert {"ce", "scn", "mtac"} <= set(list_methods())
    assert "synthetic" in list_datasets()
    assert list_methods() == sorted(list_methods())


def test_unknown_name_lists_known_ones():
    with pytest.raises(FerBenchError, match=r"unknown method 'nope'; known: .*ce.*scn"):
        METHODS.get("nope")


def test_unknown_option_lists_known_ones():
    with pytest.raises(FerBenchError, match="unknown option.*bogus.*synthetic.*num_train"):
        create_dataset("synthetic", bogus=1)


def test_decorator_registers_and_rejects_a_different_factory_under_the_same_name():
    reg = Registry("widget", "fer_bench.methods", "fer_bench.no_such_group")

    @reg.register("a", run_defaults={"epochs": 3})
    def make_a(x=1):
        return ("a", x)

    assert reg.create("a", x=2) == ("a", 2)
    assert reg.attrs("a") == {"run_defaults": {"epochs": 3}}
    with pytest.raises(FerBenchError, match="registered twice"):

        @reg.register("a")
        def other():
            return None


def test_dataset_run_defaults_are_static():
    d = dataset_run_defaults("synthetic")
    assert d["image_size"] == 48 and d["backbone"] == "test_resnet"


def test_entry_point_plugins_are_loaded(monkeypatch):
    """An outside package registers through the fer_bench.methods entry-point group."""
    import importlib.metadata as md
    import sys
    import types

    module = types.ModuleType("fake_plugin_mod")

    def load_plugin():
        from fer_bench.registry import register_method

        @register_method("plugin_method_for_test")
        class Plugin:
            recipe = {"epochs": 1}

    module.Plugin = None
    sys.modules["fake_plugin_mod"] = module
    ep = md.EntryPoint(name="plug", value="fake_plugin_mod", group="fer_bench.methods")
    reg = Registry("method", "fer_bench.methods", "fer_bench.methods")
    loaded = []

    def fake_entry_points(group):
        return [ep] if group == "fer_bench.methods" else []

    monkeypatch.setattr("fer_bench.registry.entry_points", fake_entry_points)
    monkeypatch.setattr(
        md.EntryPoint, "load", lambda self: loaded.append(self.name) or load_plugin()
    )
    reg.names()
    assert loaded == ["plug"]
    assert "plugin_method_for_test" in METHODS._factories
    METHODS._factories.pop("plugin_method_for_test")
