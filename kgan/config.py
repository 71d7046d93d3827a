"""Training recipes: TOML files over the paper's defaults, overridable from the command line.

A recipe is read in three layers, later ones winning:

1. the defaults for the chosen GAN (the values of Han et al. 2017 and of each GAN's own paper:
   64x64, batch 64, 100 epochs, latent 100, the GAN's optimiser);
2. a TOML file (`configs/*.toml`);
3. command-line overrides, as dotted keys (`train.epochs=3`) or as bare keys when the name is
   unique across sections (`epochs=3`).

Unknown keys are errors that name the file and the key, so a typo never silently trains the
paper's recipe instead of yours. The resolved recipe is saved as `runs/<name>/config.json`, which
`kgan.export` reads to describe the generator.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kgan import atomic, names, sizes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

OPTIMIZERS = ("adam", "rmsprop", "sgd")
MIXED_PRECISION = ("none", "mixed_float16", "mixed_bfloat16")
DISTRIBUTE = ("auto", "none", "mirrored", "multiworker")


class ConfigError(ValueError):
    """A recipe file or override is malformed; the message names the source and the key."""


@dataclass
class ModelConfig:
    """Generator/discriminator shape (passed to `kgan.gans.build_gan`)."""

    image_size: int = 64
    latent_dim: int = 100
    conditional: bool = False
    #: Base number of filters; 0 keeps the network's own default (DCGAN 64, BEGAN n = 64).
    width: int = 0
    #: BEGAN's auto-encoder bottleneck h.
    bottleneck: int = 64


@dataclass
class DataConfig:
    """Which slices to train on."""

    #: "phantom" builds (if missing) and uses the built-in phantom cohort; anything else is a
    #: dataset name ("brats_slices/sagittal_64") or a directory of shards for `load_slices`.
    source: str = "phantom"
    plane: str = "sagittal"
    split: str = "train"
    #: Modalities to keep (all four, as in the paper, by default).
    modalities: list = field(default_factory=lambda: ["t1", "t1ce", "t2", "flair"])
    #: Phantom cohort size; 0 keeps the data module's default.
    patients: int = 0
    #: Seeds the phantom cohort and its patient split when training builds it. Apart from
    #: train.seed, so that runs with different training seeds see the same data.
    split_seed: int = 0
    data_dir: str = names.DEFAULT_DATA_DIR


@dataclass
class OptimizerConfig:
    """One optimiser. Decay: lr = max(min_learning_rate, lr0 * decay_rate ** floor(t / decay_steps))
    with t the optimiser's own update count (a WGAN critic counts n_critic updates per step)."""

    name: str = "adam"
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    rho: float = 0.9
    momentum: float = 0.0
    epsilon: float = 1e-7
    decay_rate: float = 1.0
    decay_steps: int = 0
    min_learning_rate: float = 0.0


@dataclass
class OptimizersConfig:
    d: OptimizerConfig = field(default_factory=OptimizerConfig)
    g: OptimizerConfig = field(default_factory=OptimizerConfig)


@dataclass
class TrainConfig:
    """The loop: sizes, lengths, checkpoints, devices."""

    batch_size: int = 64
    epochs: int = 100
    #: Training steps per epoch; 0 means one pass over the data (slices // batch_size).
    steps_per_epoch: int = 0
    seed: int = 0
    #: Save a checkpoint every this many steps (and at every epoch end).
    checkpoint_every: int = 200
    keep_checkpoints: int = 3
    #: Write scalars to TensorBoard every this many steps.
    log_every: int = 10
    #: Training steps per call into the compiled step (Keras's steps_per_execution): > 1 runs
    #: several steps in one graph call, saving the host's per-step overhead; checkpoints, logs,
    #: the NaN guard and the step counter then act at the end of each call (still exact).
    steps_per_execution: int = 1
    #: Samples in the fixed-latent grid logged every epoch.
    num_samples: int = 64
    #: XLA: true, false, or "auto" (GPU: on; CPU: the faster path for it, see kgan/device.py).
    jit_compile: Any = "auto"
    mixed_precision: str = "none"
    #: "auto": MultiWorkerMirroredStrategy when TF_CONFIG names several workers, else
    #: MirroredStrategy over several GPUs; "none", "mirrored" or "multiworker" to choose.
    distribute: str = "auto"
    #: Stop when a watched metric's magnitude exceeds its limit (divergence), besides NaN/Inf.
    divergence_limits: dict = field(default_factory=dict)
    #: Keras progress output: 0 silent, 1 bar, 2 one line per epoch, "auto" a bar on a terminal
    #: and one line per epoch otherwise (batch jobs, CI, nohup).
    verbose: Any = "auto"


@dataclass
class OutputConfig:
    logdir: str = "runs"
    export_dir: str = "exports"
    export: bool = True


@dataclass
class Config:
    """A full, resolved training recipe."""

    gan: str = "wgan"
    #: The recipe file this came from ("" for the paper's defaults alone).
    recipe: str = ""
    #: Run name: runs/<name>/ and exports/<name>/. Empty: the recipe file's stem, else the GAN.
    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    #: GAN-specific parameters passed as keyword arguments to `build_gan` (n_critic, clip_value,
    #: gp_weight, gamma, lambda_k, ...).
    gan_params: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizersConfig = field(default_factory=OptimizersConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.output.logdir, self.name)

    @property
    def export_base(self) -> str:
        return os.path.join(self.output.export_dir, self.name)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The free-form sections: any key is accepted (the GAN builder validates them).
_FREE_SECTIONS = {"gan_params", "train.divergence_limits"}
# Fields that take a value of their type or one word.
_OR_WORD = {"train.jit_compile": (bool, "auto"), "train.verbose": (int, "auto")}


def paper_optimizer(gan: str) -> OptimizerConfig:
    """The optimiser of a GAN's paper (`kgan.names.PAPER_RECIPES`), as a recipe section."""
    if gan not in names.GANS:
        raise ConfigError(f"unknown gan {gan!r}; choose from {names.GANS}")
    return OptimizerConfig(**names.PAPER_RECIPES[gan].optimizer)


def defaults(gan: str) -> Config:
    """The paper's recipe for one GAN (64x64, batch 64, 100 epochs, latent 100)."""
    if gan not in names.GANS:
        raise ConfigError(f"unknown gan {gan!r}; choose from {names.GANS}")
    optimizers = OptimizersConfig(d=paper_optimizer(gan), g=paper_optimizer(gan))
    return Config(
        gan=gan, optimizer=optimizers, gan_params=dict(names.PAPER_RECIPES[gan].gan_params)
    )


def _merge(obj: Any, values: Mapping, source: str, prefix: str = "") -> None:
    """Writes a nested mapping into nested dataclasses, rejecting unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(obj)}
    for key, value in values.items():
        path = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {path!r}; known keys here: {sorted(fields)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {path!r} is a section; give a table, not {value!r}")
            _merge(current, value, source, path + ".")
        elif path in _FREE_SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {path!r} must be a table, got {value!r}")
            current.update(value)
        else:
            setattr(obj, key, _coerce(current, value, source, path))


def _coerce(current: Any, value: Any, source: str, path: str) -> Any:
    """Checks a value against the type of the default it replaces."""
    if path in _OR_WORD:
        kind, word = _OR_WORD[path]
        if value == word or (isinstance(value, kind) and (kind is bool) == isinstance(value, bool)):
            return value
        raise ConfigError(f"{source}: {path!r} must be {kind.__name__} or {word!r}, got {value!r}")
    if isinstance(current, bool):
        if isinstance(value, bool):
            return value
    elif isinstance(current, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif isinstance(current, float):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(current, str):
        if isinstance(value, str):
            return value
    elif isinstance(current, list):
        if isinstance(value, list):
            return list(value)
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
    else:
        return value
    raise ConfigError(f"{source}: {path!r} must be {type(current).__name__}, got {value!r}")


def _leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    paths = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        path = prefix + f.name
        if dataclasses.is_dataclass(value):
            paths.extend(_leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def parse_override(text: str) -> tuple[str, Any]:
    """Splits "key=value" and reads the value as a TOML literal (strings need no quotes)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key:
        raise ConfigError(f"override {text!r}: empty key")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def apply_override(config: Config, key: str, value: Any, source: str = "command line") -> None:
    """Sets one field by dotted path, or by bare name when unique across sections."""
    parts = key.split(".")
    free = [s for s in _FREE_SECTIONS if key.startswith(s + ".")]
    if free:
        section = config
        for part in free[0].split("."):
            section = getattr(section, part)
        section[key[len(free[0]) + 1 :]] = value
        return
    if len(parts) == 1:
        matches = [p for p in _leaf_paths(config) if p.split(".")[-1] == key]
        if key in matches:  # a top-level field ("name", "gan") wins over nested namesakes
            matches = [key]
        if key in config.gan_params:  # the GAN's own parameters by bare name (gamma, n_critic)
            matches.append(f"gan_params.{key}")
        if len(matches) > 1:
            raise ConfigError(f"{source}: {key!r} is ambiguous; say which: {matches}")
        if not matches:
            raise ConfigError(f"{source}: unknown key {key!r}; known keys: {_leaf_paths(config)}")
        if matches[0].startswith("gan_params."):
            config.gan_params[key] = value
            return
        parts = matches[0].split(".")
    nested: dict = {}
    cursor = nested
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    _merge(config, nested, source)


def recipes_dir() -> str:
    """The folder of kgan's recipe files (configs/, shipped inside the package as kgan/configs)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def find_recipe(name_or_path: str) -> str:
    """A recipe file: a path as given, else a shipped recipe by name ("began-cpu")."""
    if os.path.exists(name_or_path) or os.sep in name_or_path or name_or_path.endswith(".toml"):
        return name_or_path
    shipped = os.path.join(recipes_dir(), f"{name_or_path}.toml")
    if os.path.isfile(shipped):
        return shipped
    shipped_names = sorted(f[:-5] for f in os.listdir(recipes_dir()) if f.endswith(".toml"))
    raise ConfigError(
        f"recipe {name_or_path!r} is neither a file nor a shipped recipe "
        f"({', '.join(shipped_names)})"
    )


def cpu_recipe(gan: str) -> str:
    """The shipped small recipe of a GAN, for machines without a GPU."""
    return os.path.join(recipes_dir(), f"{gan}-cpu.toml")


def load_toml(path: str) -> dict:
    """Reads a recipe file with errors that name it."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"recipe file {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def resolve(
    gan: str | None = None,
    config_file: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    set_items: list[str] | None = None,
) -> Config:
    """Builds the resolved recipe: GAN defaults, then the file, then overrides.

    Args:
      gan: the GAN; if None, taken from the file (`gan = ...`), else "wgan" (the paper's).
      config_file: a TOML recipe.
      overrides: {dotted-or-bare key: value} from typed command-line flags.
      set_items: ["key=value", ...] from `--set`.

    Returns:
      The validated `Config`.
    """
    if config_file:
        config_file = find_recipe(config_file)
    values = load_toml(config_file) if config_file else {}
    file_gan = values.get("gan")
    if gan and file_gan and gan != file_gan:
        raise ConfigError(
            f"{config_file}: recipe is for gan {file_gan!r} but --gan {gan} was given"
        )
    config = defaults(gan or file_gan or "wgan")
    if config_file:
        _merge(config, values, config_file)
        config.recipe = config_file
        if not config.name:
            config.name = os.path.splitext(os.path.basename(config_file))[0]
    for key, value in (overrides or {}).items():
        apply_override(config, key, value)
    for item in set_items or []:
        key, value = parse_override(item)
        apply_override(config, key, value, source=f"--set {item}")
    if not config.name:
        config.name = config.gan
    validate(config)
    return config


def validate(config: Config) -> None:
    """Rejects recipes that cannot train, with the offending field named."""

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(f"recipe {config.name!r}: {message}")

    need(config.gan in names.GANS, f"gan must be one of {names.GANS}, got {config.gan!r}")
    m, t = config.model, config.train
    try:
        sizes.check_image_size(m.image_size, "model.image_size")
    except ValueError as e:
        need(False, str(e))
    need(m.latent_dim > 0, f"model.latent_dim must be positive, got {m.latent_dim}")
    need(m.width >= 0, f"model.width must be >= 0, got {m.width}")
    need(t.batch_size > 0, f"train.batch_size must be positive, got {t.batch_size}")
    need(t.epochs > 0, f"train.epochs must be positive, got {t.epochs}")
    need(t.steps_per_epoch >= 0, f"train.steps_per_epoch must be >= 0, got {t.steps_per_epoch}")
    need(
        t.checkpoint_every > 0, f"train.checkpoint_every must be positive, got {t.checkpoint_every}"
    )
    need(t.keep_checkpoints > 0, "train.keep_checkpoints must be positive")
    need(t.log_every > 0, "train.log_every must be positive")
    need(
        isinstance(t.steps_per_execution, int) and t.steps_per_execution > 0,
        f"train.steps_per_execution must be a positive integer, got {t.steps_per_execution!r}",
    )
    need(
        t.mixed_precision in MIXED_PRECISION,
        f"train.mixed_precision must be one of {MIXED_PRECISION}, got {t.mixed_precision!r}",
    )
    need(
        t.distribute in DISTRIBUTE,
        f"train.distribute must be one of {DISTRIBUTE}, got {t.distribute!r}",
    )
    for key, limit in t.divergence_limits.items():
        need(
            isinstance(limit, (int, float)) and limit > 0,
            f"train.divergence_limits.{key} must be a positive number, got {limit!r}",
        )
    need(bool(config.data.modalities), "data.modalities must not be empty")
    for which in ("d", "g"):
        o = getattr(config.optimizer, which)
        need(
            o.name in OPTIMIZERS,
            f"optimizer.{which}.name must be one of {OPTIMIZERS}, got {o.name!r}",
        )
        need(o.learning_rate > 0, f"optimizer.{which}.learning_rate must be positive")
        need(0 < o.decay_rate <= 1, f"optimizer.{which}.decay_rate must be in (0, 1]")
        need(
            o.decay_rate == 1 or o.decay_steps > 0,
            f"optimizer.{which}.decay_steps must be positive when decay_rate < 1",
        )
    need(
        bool(config.name) and os.sep not in config.name and config.name not in (".", ".."),
        f"name must be a plain directory name, got {config.name!r}",
    )


def from_dict(values: Mapping) -> Config:
    """Rebuilds a `Config` from `to_dict()` output (e.g. a run's config.json)."""
    values = dict(values)
    values = {k: v for k, v in values.items() if k not in ("resolved",)}
    config = defaults(values.get("gan", "wgan"))
    config.gan_params = {}
    _merge(config, values, "config.json")
    return config


def save_json(config: Config, path: str, extra: Mapping | None = None) -> None:
    """Writes the resolved recipe atomically (with `extra` facts such as the dataset's path)."""
    data = config.to_dict()
    if extra:
        data["resolved"] = dict(extra)
    atomic.write_json(path, data, sort_keys=True)


__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "OptimizerConfig",
    "OptimizersConfig",
    "OutputConfig",
    "TrainConfig",
    "apply_override",
    "defaults",
    "from_dict",
    "load_toml",
    "paper_optimizer",
    "parse_override",
    "resolve",
    "save_json",
    "validate",
    "find_recipe",
    "cpu_recipe",
    "recipes_dir",
]
