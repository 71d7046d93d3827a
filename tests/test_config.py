"""Recipes: paper defaults, TOML layering, command-line overrides, clear errors."""

import glob
import json
import os

import pytest

from kgan import config as cfg
from kgan import names, optimizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write(tmp_path, text, name="recipe.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_paper_defaults_for_wgan():
    c = cfg.defaults("wgan")
    assert (c.model.image_size, c.model.latent_dim, c.train.batch_size, c.train.epochs) == (
        64,
        100,
        64,
        100,
    )
    assert c.optimizer.d.name == c.optimizer.g.name == "rmsprop"
    assert c.optimizer.d.learning_rate == c.optimizer.g.learning_rate == 5e-5
    assert c.gan_params == {"n_critic": 5, "clip_value": 0.01}
    assert c.train.jit_compile == "auto"  # XLA on GPUs; per device on CPUs (kgan.device)


def test_each_gan_gets_its_own_optimizer():
    assert cfg.defaults("dcgan").optimizer.d.learning_rate == 2e-4
    assert cfg.defaults("dcgan").optimizer.d.beta_1 == 0.5
    b = cfg.defaults("began")
    assert (b.optimizer.g.name, b.optimizer.g.learning_rate, b.optimizer.g.decay_rate) == (
        "adam",
        1e-4,
        0.5,
    )
    assert b.optimizer.g.min_learning_rate == 2e-5
    assert b.gan_params == {"gamma": 0.5, "lambda_k": 0.001}
    assert cfg.defaults("wgan-gp").gan_params["gp_weight"] == 10.0
    with pytest.raises(cfg.ConfigError, match="unknown gan"):
        cfg.defaults("vae")


def test_file_overrides_defaults_and_names_the_run(tmp_path):
    path = write(
        tmp_path,
        'gan = "began"\n[model]\nimage_size = 32\n[train]\nepochs = 7\n[gan_params]\ngamma = 0.7\n',
        name="tiny-began.toml",
    )
    c = cfg.resolve(config_file=path)
    assert c.gan == "began" and c.name == "tiny-began"
    assert c.model.image_size == 32 and c.train.epochs == 7
    assert c.gan_params == {"gamma": 0.7, "lambda_k": 0.001}  # merged, not replaced
    assert c.model.latent_dim == 100  # untouched default


def test_command_line_beats_file(tmp_path):
    path = write(tmp_path, 'gan = "wgan"\n[train]\nepochs = 7\nbatch_size = 16\n')
    c = cfg.resolve(
        "wgan",
        path,
        overrides={"epochs": 2, "model.image_size": 128},
        set_items=[
            "optimizer.d.learning_rate=1e-3",
            "name=exp1",
            "gan_params.n_critic=3",
            "modalities=t1,flair",
            "train.divergence_limits.d_loss=1e4",
        ],
    )
    assert c.train.epochs == 2 and c.train.batch_size == 16
    assert c.model.image_size == 128
    assert c.optimizer.d.learning_rate == 1e-3 and c.optimizer.g.learning_rate == 5e-5
    assert c.name == "exp1" and c.gan_params["n_critic"] == 3
    assert c.data.modalities == ["t1", "flair"]
    assert c.train.divergence_limits == {"d_loss": 1e4}


def test_override_values_are_parsed_as_toml():
    assert cfg.parse_override("epochs=3") == ("epochs", 3)
    assert cfg.parse_override("lr = 1e-4") == ("lr", 1e-4)
    assert cfg.parse_override("conditional=true") == ("conditional", True)
    assert cfg.parse_override("source=brats_slices/sagittal_64") == (
        "source",
        "brats_slices/sagittal_64",
    )
    assert cfg.parse_override('modalities=["t1"]') == ("modalities", ["t1"])
    with pytest.raises(cfg.ConfigError, match="key=value"):
        cfg.parse_override("epochs")


def test_unknown_and_ambiguous_keys_are_named(tmp_path):
    path = write(tmp_path, "[train]\nepochz = 3\n")
    with pytest.raises(cfg.ConfigError) as e:
        cfg.resolve("dcgan", path)
    assert path in str(e.value) and "train.epochz" in str(e.value)
    with pytest.raises(cfg.ConfigError, match="ambiguous"):
        cfg.resolve("dcgan", set_items=["learning_rate=1e-3"])  # optimizer.d or optimizer.g?
    with pytest.raises(cfg.ConfigError, match="unknown key 'nonsense'"):
        cfg.resolve("dcgan", set_items=["nonsense=1"])


def test_type_errors_and_invalid_values(tmp_path):
    with pytest.raises(cfg.ConfigError, match="train.epochs.*must be int"):
        cfg.resolve("dcgan", write(tmp_path, '[train]\nepochs = "many"\n'))
    with pytest.raises(cfg.ConfigError, match="is a section"):
        cfg.resolve("dcgan", write(tmp_path, "model = 3\n"))
    with pytest.raises(cfg.ConfigError, match="powers of two"):
        cfg.resolve("dcgan", set_items=["image_size=48"])
    with pytest.raises(cfg.ConfigError, match="512 is not a size"):  # the networks cap at 256
        cfg.resolve("dcgan", set_items=["image_size=512"])
    with pytest.raises(cfg.ConfigError, match="mixed_precision"):
        cfg.resolve("dcgan", set_items=["mixed_precision=fp8"])
    with pytest.raises(cfg.ConfigError, match="decay_steps"):
        cfg.resolve("began", set_items=["optimizer.d.decay_steps=0"])
    with pytest.raises(cfg.ConfigError, match="not valid TOML"):
        cfg.resolve("dcgan", write(tmp_path, "[train\n"))
    with pytest.raises(cfg.ConfigError, match="does not exist"):
        cfg.resolve("dcgan", str(tmp_path / "missing.toml"))
    with pytest.raises(cfg.ConfigError, match="recipe is for gan 'wgan'"):
        cfg.resolve("began", write(tmp_path, 'gan = "wgan"\n'))
    # An integer-valued float is accepted for an int field, a float for a float field from an int.
    c = cfg.resolve("dcgan", set_items=["epochs=3.0", "optimizer.d.learning_rate=1"])
    assert c.train.epochs == 3 and isinstance(c.optimizer.d.learning_rate, float)


def test_every_shipped_recipe_loads_and_validates():
    files = sorted(glob.glob(os.path.join(ROOT, "configs", "*.toml")))
    shipped = {os.path.basename(f)[:-5] for f in files}
    for required in (
        "dcgan",
        "wgan",
        "wgan-gp",
        "began",
        "began-128",
        "began-cpu",
        "dcgan-cpu",
        "wgan-cond",
    ):
        assert required in shipped, f"configs/{required}.toml missing"
    for f in files:
        c = cfg.resolve(config_file=f)
        assert c.gan in names.GANS and c.name == os.path.basename(f)[:-5]
        if c.name.endswith("-128"):
            assert c.model.image_size == 128
        if c.name.endswith("-cond"):
            assert c.model.conditional
    paper = cfg.resolve(config_file=os.path.join(ROOT, "configs", "wgan.toml"))
    same = {"name": "wgan", "recipe": ""}  # where it came from may differ, nothing else
    assert paper.to_dict() | same == cfg.defaults("wgan").to_dict() | same


def test_json_round_trip(tmp_path):
    c = cfg.resolve("began", set_items=["epochs=4", "gan_params.gamma=0.4", "conditional=true"])
    path = str(tmp_path / "run" / "config.json")
    cfg.save_json(c, path, extra={"dataset_dir": "/data/x"})
    data = json.loads(open(path).read())
    assert data["resolved"] == {"dataset_dir": "/data/x"}
    assert data["gan"] == "began" and data["model"]["conditional"] is True
    back = cfg.from_dict(data)
    assert back.to_dict() == c.to_dict()
    assert not [p for p in os.listdir(tmp_path / "run") if ".tmp" in p]


def test_step_decay_with_floor_hand_computed():
    o = cfg.OptimizerConfig("adam", 1e-4, decay_rate=0.5, decay_steps=10, min_learning_rate=2e-5)
    schedule = optimizers.make_schedule(o)
    got = [float(schedule(t)) for t in (0, 9, 10, 19, 20, 30, 1000)]
    want = [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2e-5, 2e-5]
    assert got == pytest.approx(want, rel=1e-6)
    assert optimizers.make_schedule(cfg.OptimizerConfig("adam", 3e-4)) == 3e-4


def test_make_optimizer_kinds():
    adam = optimizers.make_optimizer(cfg.defaults("dcgan").optimizer.d)
    assert type(adam).__name__ == "Adam" and float(adam.beta_1) == 0.5
    rms = optimizers.make_optimizer(cfg.defaults("wgan").optimizer.d)
    assert type(rms).__name__ == "RMSprop" and float(rms.learning_rate) == pytest.approx(5e-5)
    began = optimizers.make_optimizer(cfg.defaults("began").optimizer.g)
    assert float(began.learning_rate) == pytest.approx(1e-4)
