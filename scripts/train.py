#!/usr/bin/env python
"""Train a GAN on brain MRI slices: the product's main job.

  python scripts/train.py --gan began --config configs/began-cpu.toml

Builds the phantom dataset when missing, trains with a progress bar, resumes runs/<name>/ when it
holds checkpoints, exports the generator to exports/<name>/<version>/ and prints where all went.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gan", choices=["dcgan", "wgan", "wgan-gp", "began"],
                   help="the GAN (default: the recipe's, else wgan as in the paper)")
    p.add_argument("--config", help="a TOML recipe, e.g. configs/began-cpu.toml")
    p.add_argument("--data", help="dataset name (brats_slices/sagittal_64) or shard directory; "
                                  "default: the built-in phantom cohort, built if missing")
    p.add_argument("--epochs", type=int)
    p.add_argument("--size", type=int, help="image size (default: the recipe's, or the dataset's "
                                            "when --data is given)")
    p.add_argument("--conditional", action="store_true", default=None,
                   help="condition on modality and tumour present/absent")
    p.add_argument("--logdir", help="where run directories go (default runs/)")
    p.add_argument("--seed", type=int)
    p.add_argument("--name", help="run name: runs/<name>/, exports/<name>/")
    p.add_argument("--fresh", action="store_true", help="delete runs/<name>/ instead of resuming it")
    p.add_argument("--set", dest="set_items", action="append", default=[], metavar="KEY=VALUE",
                   help="override any recipe field, e.g. --set train.batch_size=32 "
                        "--set optimizer.g.learning_rate=5e-5 (repeatable)")
    return p


def overrides_from(args: argparse.Namespace) -> dict:
    """Typed flags as recipe overrides (only the ones given)."""
    out = {}
    for flag, key in (("data", "data.source"), ("epochs", "train.epochs"),
                      ("size", "model.image_size"), ("conditional", "model.conditional"),
                      ("logdir", "output.logdir"), ("seed", "train.seed"), ("name", "name")):
        value = getattr(args, flag)
        if value is not None:
            out[key] = value
    return out


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from kgan import callbacks, config, training

    try:
        overrides = overrides_from(args)
        if args.data and args.data != "phantom" and args.size is None:
            overrides["model.image_size"] = training.dataset_image_size(args.data)
        recipe = config.resolve(args.gan, args.config, overrides, args.set_items)
        result = training.train(recipe, fresh=args.fresh)
    except (config.ConfigError, callbacks.TrainingDivergedError, FileNotFoundError) as e:
        print(f"train.py: {e}", file=sys.stderr)
        return 2
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
