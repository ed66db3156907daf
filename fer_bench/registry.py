"""Name -> factory registries for methods and datasets, in the style of timm's model registry.

Built-in entries register themselves when `fer_bench.methods` / `fer_bench.datasets` are imported
(every module in those packages is imported). Outside packages add their own through the
entry-point groups ``fer_bench.methods`` and ``fer_bench.datasets``: each entry point names a
module (or callable) whose import registers its factories with the decorators below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from fer_bench.errors import FerBenchError


class Registry:
    """A named collection of factories that lists itself and fails with the known names."""

    def __init__(
        self,
        kind: str,
        builtin_package: str,
        entry_point_group: str,
        check: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.kind = kind
        self._check = check
        self._builtin_package = builtin_package
        self._group = entry_point_group
        self._factories: dict[str, Callable[..., Any]] = {}
        self._attrs: dict[str, dict[str, Any]] = {}
        self._loaded = False

    def register(
        self, name: str, **attrs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@register_method("scn")`` above a class or factory function.

        Keyword ``attrs`` are static facts about the entry that are needed without building it,
        e.g. a dataset's ``run_defaults`` (image size, epochs, backbone) for resolving run ids.
        """

        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            if self._check is not None:
                self._check(name, factory)
            existing = self._factories.get(name)
            if existing is not None and existing is not factory:
                same = getattr(existing, "__qualname__", None) == getattr(
                    factory, "__qualname__", None
                ) and getattr(existing, "__module__", None) == getattr(factory, "__module__", None)
                if not same:
                    raise FerBenchError(f"{self.kind} '{name}' is registered twice")
            self._factories[name] = factory
            self._attrs[name] = dict(attrs)
            factory.registry_name = name  # type: ignore[attr-defined]
            return factory

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module(self._builtin_package)
        for ep in entry_points(group=self._group):
            try:
                ep.load()
            except Exception as exc:  # an outside plug-in must not take the suite down silently
                raise FerBenchError(
                    f"{self.kind} plug-in entry point '{ep.name}' ({ep.value}) failed to load: {exc}"
                ) from exc

    def names(self) -> list[str]:
        self._load()
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        self._load()
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(self.names())
            raise FerBenchError(f"unknown {self.kind} '{name}'; known: {known}") from None

    def attrs(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._attrs[name]

    def create(self, name: str, **kwargs: Any) -> Any:
        factory = self.get(name)
        check_keywords(factory, kwargs, f"{self.kind} '{name}'")
        return factory(**kwargs)


#: What the runner passes a method itself; everything else in ``__init__`` is a user option.
METHOD_ARGUMENTS = ("backbone", "num_features", "info")


def check_method_class(name: str, cls: Any) -> None:
    """Refuse what would break silently later: options ``-M`` accepts but ``list -v`` and the
    report cannot see, and a method that would train on the global defaults."""
    import inspect

    if not inspect.isclass(cls):
        raise FerBenchError(f"method '{name}': register a Method subclass, not {cls!r}")
    params = inspect.signature(cls.__init__).parameters
    loose = [
        n
        for n, p in params.items()
        if n != "self"
        and n not in METHOD_ARGUMENTS
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and (p.kind is not p.KEYWORD_ONLY or p.default is p.empty)
    ]
    if loose:
        raise FerBenchError(
            f"method '{name}': option(s) {', '.join(loose)} must be keyword-only with a default "
            "(after `*` in __init__)"
        )
    if not getattr(cls, "recipe", None):
        raise FerBenchError(
            f"method '{name}' has no recipe: set `recipe` (optimizer, lr, batch size, epochs, "
            "...) from its paper or official code, e.g. fer_bench.method.SCN_RECIPE"
        )


METHODS = Registry("method", "fer_bench.methods", "fer_bench.methods", check_method_class)
DATASETS = Registry("dataset", "fer_bench.datasets", "fer_bench.datasets")

register_method = METHODS.register
register_dataset = DATASETS.register


def list_methods() -> list[str]:
    return METHODS.names()


def list_datasets() -> list[str]:
    return DATASETS.names()


def get_method_class(name: str) -> Callable[..., Any]:
    return METHODS.get(name)


def create_method(name: str, backbone: Any, num_features: int, info: Any, **options: Any) -> Any:
    """Build a method with its options typed, checked and defaults filled (``resolve_options``)."""
    from fer_bench.options import resolve_options

    cls = METHODS.get(name)
    options = resolve_options(cls, options, f"method '{name}'")
    return cls(backbone, num_features, info, **options)


def create_dataset(name: str, **kwargs: Any) -> Any:
    return DATASETS.create(name, **kwargs)


def get_dataset_factory(name: str) -> Callable[..., Any]:
    return DATASETS.get(name)


def dataset_run_defaults(name: str) -> dict[str, Any]:
    """The settings a dataset is meant to be run with, registered as ``run_defaults=``."""
    return dict(DATASETS.attrs(name).get("run_defaults", {}))


def import_submodules(package_name: str) -> None:
    """Import every module of a package so its decorators run: one file per entry, nothing else."""
    import pkgutil

    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")


def check_keywords(
    factory: Callable[..., Any], kwargs: dict[str, Any], what: str, internal: tuple[str, ...] = ()
) -> None:
    """Unknown options are an error that lists the known ones, never a TypeError traceback.

    ``internal`` names arguments the caller passes itself: never user options.
    """
    import inspect

    target = factory.__init__ if inspect.isclass(factory) else factory
    params = inspect.signature(target).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    known = [
        n
        for n, p in params.items()
        if n != "self" and n not in internal and p.kind is not p.VAR_POSITIONAL
    ]
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise FerBenchError(
            f"unknown option(s) {', '.join(unknown)} for {what}; known: {', '.join(known) or 'none'}"
        )
