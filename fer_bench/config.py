"""One run's configuration: a plain dataclass, resolved once, recorded in full, hashed to a run id.

Unset fields (``None``) are resolved in this order, later winning: the global defaults below,
the method's recipe (``Method.recipe``: optimizer, learning rate, batch size, ...), the dataset's
``run_defaults`` (image size, epochs, backbone), then whatever the user set explicitly.

About 390 lines on purpose: this is the one home of every run option — its declaration, its
command-line help (field metadata: ``fer-bench run`` builds its flags from it), its default, its
checks (``validate``) and its part in the run id — so adding an option is an edit here only.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fer_bench.errors import FerBenchError

NOISE_TYPES = ("symmetric", "bernoulli", "asymmetric", "file", "real", "annotator")
#: Noise types whose rate is the data's own (measured, never chosen): ``--noise`` stays 0.
MEASURED_NOISE_TYPES = ("real", "annotator")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("exponential", "cosine", "step", "none")

GLOBAL_DEFAULTS: dict[str, Any] = {
    "epochs": 40,
    "batch_size": 64,
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "optimizer": "adam",
    "momentum": 0.9,
    "scheduler": "exponential",
    "scheduler_gamma": 0.9,
    "backbone": "resnet18",
    "image_size": 112,
    "val_fraction": 0.1,
    "augment": "flip_or_noise",
    "random_erasing": True,
}

# Fields that say where or how fast a run executes, not what it computes: they stay out of the
# run id so the same experiment resumes on another machine, data mount or compile setting.
EXECUTION_FIELDS = (
    "data_root",
    "output_dir",
    "device",
    "compile",
    "precision",
    "noise_file",
    "progress",
    "keep_checkpoint",
    "data_placement",
)
PRECISIONS = ("auto", "bf16", "fp32")
#: Where the training set lives while training (fer_bench.placement): measured, or forced.
DATA_PLACEMENTS = ("auto", "device", "host")


_NUMERIC_FIELDS: dict[str, type] = {
    "noise": float,
    "seed": int,
    "epochs": int,
    "batch_size": int,
    "lr": float,
    "weight_decay": float,
    "momentum": float,
    "scheduler_gamma": float,
    "image_size": int,
    "val_fraction": float,
    "noise_file_base": int,
}
_REQUIRED = ("noise", "seed", "noise_file_base")


def _option(default: Any, help: str, **cli: Any) -> Any:
    """A RunConfig field with its command-line help (and choices, flags) as metadata: the
    ``run`` command builds its arguments from these, so an option is declared once."""
    if isinstance(default, dict):
        return field(default_factory=dict, metadata={"help": help, **cli})
    return field(default=default, metadata={"help": help, **cli})


#: Where run directories go unless a run, sweep or command says otherwise.
DEFAULT_OUTPUT_DIR = "results/runs"


@dataclass
class RunConfig:
    """One run. ``None`` means: the method's recipe, else the dataset's default, else
    ``GLOBAL_DEFAULTS``; the field help below is what ``fer-bench run --help`` shows."""

    method: str = _option("ce", "method name (fer-bench list)")
    dataset: str = _option("synthetic", "dataset name (fer-bench list)")
    noise: float = _option(
        0.0,
        "label-noise rate in percent, 0 <= rate < 100; 0 < rate < 1 is refused as a likely "
        "fraction, write e.g. 0.5%% for half a percent",
        parse="noise_rate",
    )
    noise_type: str = _option(
        "symmetric",
        "symmetric (exact per-class counts), bernoulli (SCN's generator: each label flips "
        "with probability rate), asymmetric (fixed confusions), file (published list), real "
        "(FERPlus: FER2013's labels), annotator (FERPlus: one annotator's vote)",
        choices=NOISE_TYPES,
    )
    noise_file: str | None = _option(
        None, "noisy label list in RAF-DB format, for --noise-type file"
    )
    noise_file_base: int = _option(
        1,
        "first label number in the noise file: 1 for RAF-DB's list format, 0 for SCN's files",
        choices=(0, 1),
    )
    seed: int = _option(0, "seed for noise, split, init and order")
    epochs: int | None = _option(None, "training epochs")
    batch_size: int | None = _option(None, "batch size")
    lr: float | None = _option(None, "learning rate")
    weight_decay: float | None = _option(None, "weight decay")
    optimizer: str | None = _option(None, "optimizer", choices=OPTIMIZERS)
    momentum: float | None = _option(None, "SGD momentum")
    scheduler: str | None = _option(None, "per-epoch LR schedule", choices=SCHEDULERS)
    scheduler_gamma: float | None = _option(None, "LR decay factor")
    backbone: str | None = _option(None, "any timm model name, or facenet_vggface2/facenet_casia")
    pretrained: str | None = _option(
        None,
        "backbone weights: a local file, or timm:<model>.<tag> through timm's own loader",
    )
    image_size: int | None = _option(None, "training/eval input size")
    val_fraction: float | None = _option(
        None,
        "share of the noisy training set held out when a dataset has no validation split",
    )
    augment: str | None = _option(None, "none, flip, flip_or_noise or crop_flip")
    random_erasing: bool | None = _option(None, "true/false")
    balanced_sampling: bool = _option(
        False, "draw training samples with class-balanced probabilities (AffectNet)"
    )
    method_options: dict[str, Any] = _option(
        {},
        "method option, repeatable (fer-bench list -v shows them)",
        flags=("--method-option", "-M"),
        parse="options",
    )
    dataset_options: dict[str, Any] = _option(
        {},
        "dataset option, repeatable (fer-bench list -v shows them)",
        flags=("--dataset-option", "-D"),
        parse="options",
    )
    data_root: str | None = _option(None, "where the dataset lives on disk (real datasets)")
    output_dir: str = _option(DEFAULT_OUTPUT_DIR, "runs directory")
    device: str = _option("auto", "auto, cpu, cuda or cuda:N")
    compile: bool = _option(False, "torch.compile the backbone")
    precision: str = _option("auto", "auto: bf16 autocast on CUDA, fp32 on CPU", choices=PRECISIONS)
    progress: bool = _option(True, "no per-epoch progress bar", flags=("--no-progress",))
    keep_checkpoint: bool = _option(
        False,
        "a finished run keeps checkpoint.pt with the optimizer state (default: only "
        "final_weights.pt)",
    )
    data_placement: str = _option(
        "auto",
        "training set on the device (device), streamed from host memory one batch ahead "
        "(host), or device when it fits next to the model, optimizer and a batch, measured "
        "(auto); the record says which ran and why",
        choices=DATA_PLACEMENTS,
    )

    def __post_init__(self) -> None:
        # One value, one spelling: ``--noise 20`` (float) and ``noise: 20`` in YAML (int) must
        # give the same run id, and "1e-3" (a string to YAML 1.1) is still a learning rate.
        for name in _REQUIRED:
            if getattr(self, name) is None:
                raise FerBenchError(f"{name} needs a value")
        for name, kind in _NUMERIC_FIELDS.items():
            value = getattr(self, name)
            if value is None or (
                kind is int and isinstance(value, int) and not isinstance(value, bool)
            ):
                continue
            try:
                number = kind(float(value)) if kind is int else float(value)
            except (TypeError, ValueError, OverflowError):
                raise FerBenchError(f"{name} must be a number, got {value!r}") from None
            if kind is float and not math.isfinite(number):
                raise FerBenchError(f"{name} must be finite, got {value!r}")
            if kind is int and float(value) != number:
                raise FerBenchError(f"{name} must be a whole number, got {value!r}")
            setattr(self, name, number)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FerBenchError(f"unknown run option(s): {', '.join(unknown)}")
        return cls(**data)

    def validate(self) -> None:
        """Reject impossible values with one line each; resolution happens later."""
        if self.noise_type not in NOISE_TYPES:
            raise FerBenchError(
                f"unknown noise type '{self.noise_type}'; known: {', '.join(NOISE_TYPES)}"
            )
        check_noise_rate(self.noise_type, self.noise)
        if self.noise_type == "file" and not self.noise_file:
            raise FerBenchError("--noise-type file needs --noise-file PATH")
        if self.noise_file_base not in (0, 1):
            raise FerBenchError(f"--noise-file-base is 0 or 1, got {self.noise_file_base}")
        if self.batch_size is not None and self.batch_size < 2:
            raise FerBenchError(
                f"--batch-size must be >= 2 (batch norm and the rank losses compare samples), got {self.batch_size}"
            )
        for name in ("epochs", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise FerBenchError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.lr is not None and not self.lr > 0:
            raise FerBenchError(f"--lr must be > 0, got {self.lr}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise FerBenchError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.val_fraction is not None and not 0 <= self.val_fraction < 1:
            raise FerBenchError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.optimizer is not None and self.optimizer not in OPTIMIZERS:
            raise FerBenchError(
                f"unknown optimizer '{self.optimizer}'; known: {', '.join(OPTIMIZERS)}"
            )
        if self.scheduler is not None and self.scheduler not in SCHEDULERS:
            raise FerBenchError(
                f"unknown scheduler '{self.scheduler}'; known: {', '.join(SCHEDULERS)}"
            )
        if self.precision not in PRECISIONS:
            raise FerBenchError(
                f"--precision must be one of {', '.join(PRECISIONS)}, got '{self.precision}'"
            )
        if self.data_placement not in DATA_PLACEMENTS:
            raise FerBenchError(
                f"--data-placement must be one of {', '.join(DATA_PLACEMENTS)}, "
                f"got '{self.data_placement}'"
            )
        check_device_name(self.device)

    def resolved(
        self, method_recipe: dict[str, Any], dataset_defaults: dict[str, Any]
    ) -> RunConfig:
        """A copy with every unset field filled from the layered defaults."""
        values = self.to_dict()
        layers = [GLOBAL_DEFAULTS, method_recipe, dataset_defaults]
        for name in list(values):
            if values[name] is not None:
                continue
            for layer in layers:
                if layer.get(name) is not None:
                    values[name] = layer[name]
        out = RunConfig(**values)
        out.validate()
        return out

    def identity(self) -> dict[str, Any]:
        """What the run computes: every setting but where and how fast it runs, with input
        files by content. Two runs are the same run exactly when their identities match."""
        ident = run_settings(self.to_dict())
        if self.noise_type == "file" and self.noise_file:
            ident["noise_file_sha1"] = file_sha1(self.noise_file)
        published = None
        if (self.pretrained or "").startswith("timm:") or (self.backbone or "").startswith(
            "facenet_"
        ):
            from fer_bench.pretrained import weights_sha1

            published = weights_sha1(self.backbone, self.pretrained)
        if published is not None:
            # Published weights by name and content: a re-release under the same tag is new.
            ident["pretrained"] = f"{self.pretrained or self.backbone}@{published}"
        elif self.pretrained:
            # The weights, not their path, define the run: new weights at an old path are a
            # new run, the same weights on another mount are the same run.
            ident["pretrained"] = file_sha1(self.pretrained)
        return ident

    def input_stamps(self) -> dict[str, list[int]]:
        """Size and modification time of the local files ``identity`` hashes: a job launched
        with its identity re-hashes them only when these changed since launch."""
        paths = [self.noise_file] if self.noise_type == "file" and self.noise_file else []
        if self.pretrained and not self.pretrained.startswith("timm:"):
            paths.append(self.pretrained)
        stamps = {}
        for path in paths:
            try:
                stat = os.stat(path)
            except OSError:
                continue  # identity() names the unreadable file
            stamps[path] = [stat.st_size, stat.st_mtime_ns]
        return stamps

    def run_id(self, identity: dict[str, Any] | None = None) -> str:
        """Derived from the identity (pass it when already computed: it hashes input files), so
        a rerun lands in (and resumes) the same place."""
        ident = self.identity() if identity is None else identity
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()
        noise = f"{self.noise:g}".replace(".", "p")
        return (
            f"{self.dataset}-{self.method}-{self.noise_type[:3]}{noise}-s{self.seed}-{digest[:10]}"
        )


def run_settings(values: dict[str, Any]) -> dict[str, Any]:
    """A config's settings that define the run, before input files are hashed: no execution
    fields, and the noise file's label base only where a noise file is read."""
    settings = {k: v for k, v in values.items() if k not in EXECUTION_FIELDS}
    if settings.get("noise_type") != "file":
        settings.pop("noise_file_base", None)
    return settings


def file_sha1(path: str) -> str:
    try:
        digest = hashlib.sha1()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError as exc:
        raise FerBenchError(f"cannot read {path}: {exc.strerror}") from None


def check_device_name(name: str) -> None:
    """The device spellings a run, ``bench`` and ``eval`` accept (availability is checked
    where the device is opened)."""
    if name not in ("auto", "cpu", "cuda") and not (
        name.startswith("cuda:") and name[5:].isdigit()
    ):
        raise FerBenchError(f"--device must be auto, cpu, cuda or cuda:N, got '{name}'")


def check_noise_rate(noise_type: str, rate_percent: float) -> None:
    """A rate is a percentage in [0, 100); a noise type whose rate is the data's own takes
    none. Serves ``RunConfig.validate`` and direct callers of ``noise.inject_noise``."""
    if not 0 <= rate_percent < 100:
        raise FerBenchError(f"--noise is a percentage in [0, 100), got {rate_percent:g}")
    if noise_type in MEASURED_NOISE_TYPES and rate_percent:
        raise FerBenchError(
            f"--noise-type {noise_type} takes no --noise rate: the noise is the data's own"
        )


def parse_noise_rate(value: Any) -> float:
    """A noise rate as a user writes it (``--noise``, a sweep's ``noise:``): a percentage.

    A rate strictly between 0 and 1 is almost surely a fraction meant as a percentage and is
    refused; ``0.2%`` spells a true 0.2 percent. ``RunConfig`` itself takes any number.
    """
    text = str(value).strip()
    explicit = text.endswith("%")
    try:
        rate = float(text[:-1] if explicit else text) if not isinstance(value, bool) else None
    except ValueError:
        rate = None
    if rate is None or not math.isfinite(rate):
        raise FerBenchError(f"--noise must be a percentage such as 20, got {value!r}")
    if not explicit and 0 < rate < 1:
        raise FerBenchError(
            f"--noise {text} is a percentage: did you mean {rate * 100:g}? "
            f"(write {text}% for {text} percent)"
        )
    return rate


def parse_option_value(text: str) -> Any:
    """``key=value`` values from the command line: JSON where it parses, else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_options(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise FerBenchError(f"{flag} takes KEY=VALUE, got '{pair}'")
        out[key.replace("-", "_")] = parse_option_value(value)
    return out
