"""Train a GAN on brain MRI slices: the product's main job.

  python scripts/train.py --gan began          (or: kgan train --gan began)

Builds the phantom dataset when missing, prints what it will do (device, oneDNN, XLA, recipe,
size, steps, then a time estimate), trains, resumes runs/<name>/ when it holds checkpoints,
exports the generator to exports/<name>/<version>/ and prints where all went. On a machine
without a GPU and without --config it trains the GAN's small CPU recipe (configs/<gan>-cpu.toml);
--paper trains the paper's 64x64 recipe anyway.
"""

from __future__ import annotations

import argparse
import os
import sys

from kgan import names

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--gan",
        choices=names.GANS,
        help="the GAN (default: the recipe's, else wgan as in the paper)",
    )
    p.add_argument(
        "--config",
        help="a TOML recipe file, or a shipped recipe's name (began-cpu, wgan, dcgan-128, ...)",
    )
    p.add_argument(
        "--paper",
        action="store_true",
        help="train the paper's recipe (64x64, 100 epochs) even without a GPU",
    )
    p.add_argument(
        "--data",
        help="dataset name (brats_slices/sagittal_64) or shard directory; "
        "default: the built-in phantom cohort, built if missing",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument(
        "--size",
        type=int,
        help="image size (default: the recipe's, or the dataset's when --data is given)",
    )
    p.add_argument(
        "--conditional",
        action="store_true",
        default=None,
        help="condition on modality and tumour present/absent",
    )
    p.add_argument("--logdir", help="where run directories go (default runs/)")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", help="run name: runs/<name>/, exports/<name>/")
    p.add_argument(
        "--fresh", action="store_true", help="delete runs/<name>/ instead of resuming it"
    )
    p.add_argument(
        "--set",
        dest="set_items",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any recipe field, e.g. --set train.batch_size=32 "
        "--set optimizer.g.learning_rate=5e-5 (repeatable)",
    )
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    """Typed flags as recipe overrides (only the ones given)."""
    out = {}
    for flag, key in (
        ("data", "data.source"),
        ("epochs", "train.epochs"),
        ("size", "model.image_size"),
        ("conditional", "model.conditional"),
        ("logdir", "output.logdir"),
        ("seed", "train.seed"),
        ("name", "name"),
    ):
        value = getattr(args, flag)
        if value is not None:
            out[key] = value
    return out


def choose_recipe(args: argparse.Namespace, has_gpu: bool, log=print) -> str | None:
    """The recipe file to train: --config, else on a CPU-only machine the GAN's CPU recipe."""
    from kgan import config

    if args.config:
        if args.paper:
            raise config.ConfigError("--paper and --config exclude each other")
        return args.config
    if args.paper or has_gpu:
        return None
    gan = args.gan or "wgan"
    recipe = config.cpu_recipe(gan)
    log(
        f"kgan: no GPU found, so training the small CPU recipe {gan}-cpu "
        f"({recipe}); --paper trains the paper's 64x64 recipe (GPU work: hours to days here)"
    )
    return recipe


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    import tensorflow as tf

    from kgan import callbacks, config, distribute, training

    try:
        has_gpu = bool(tf.config.list_physical_devices("GPU"))  # runs no TensorFlow op
        recipe_file = choose_recipe(args, has_gpu)
        overrides = overrides_from(args)
        mode = config.resolve(args.gan, recipe_file, overrides, args.set_items).train.distribute
        if distribute.wants_multiworker(mode, distribute.cluster_from_env()):
            # The strategy first: TensorFlow configures collective ops before its first op
            # (reading the dataset's image size below is one).
            distribute.multiworker_strategy()
        if args.data and args.data != "phantom" and args.size is None:
            overrides["model.image_size"] = training.dataset_image_size(args.data)
        recipe = config.resolve(args.gan, recipe_file, overrides, args.set_items)
        result = training.train(recipe, fresh=args.fresh)
    except (
        config.ConfigError,
        callbacks.TrainingDivergedError,
        FileNotFoundError,
        distribute.ClusterError,
    ) as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0
