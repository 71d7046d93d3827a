"""Builds a slice dataset (TFRecord shards via TFDS) from BraTS volumes or the phantom cohort.

Examples:
  python scripts/make_records.py phantom                      # the default dataset
  python scripts/make_records.py phantom --patients 50 --seed 1 --size 128
  python scripts/make_records.py brats --dir ~/BraTS2021 --plane sagittal --size 64 --skip-bad
  python scripts/make_records.py phantom --beam-runner DirectRunner -- --direct_num_workers=2
  python scripts/make_records.py brats --dir /data/brats --beam-runner DataflowRunner \\
      -- --project=P --region=R --temp_location=gs://bucket/tmp --setup_file=./setup.py

Everything after `--` goes to Apache Beam as pipeline options (`pip install 'kgan[beam]'`).
"""

from __future__ import annotations

import argparse
import os
import sys

from kgan import names

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _size(text: str) -> int:
    """--size, refused here (one line) when training could not use it."""
    from kgan import sizes

    try:
        return sizes.check_image_size(text, "--size")
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--size ")) from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="source", required=True)
    for name, help_text in (
        ("brats", "BraTS volumes you downloaded (2015-2023 layouts)"),
        ("phantom", "the built-in phantom cohort (generated, no download)"),
    ):
        p = sub.add_parser(name, help=help_text)
        if name == "brats":
            p.add_argument("--dir", required=True, help="folder holding the BraTS cases")
        else:
            p.add_argument("--patients", type=int, default=None, help="cohort size (default 20)")
        p.add_argument("--plane", default="sagittal", choices=names.PLANES)
        p.add_argument(
            "--size",
            type=_size,
            default=64,
            help="slice side: 64 (paper), 128 or 256 (also 16 or 32 for quick tests)",
        )
        p.add_argument(
            "--resize",
            default="pad",
            choices=("pad", "stretch"),
            help="pad to square keeping aspect (default) or stretch (paper)",
        )
        p.add_argument("--seed", type=int, default=0, help="patient split seed (and phantom seed)")
        p.add_argument(
            "--data-dir", default=names.DEFAULT_DATA_DIR, help="dataset home (TFDS data_dir)"
        )
        p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
        p.add_argument(
            "--skip-bad", action="store_true", help="record unusable cases in the summary and go on"
        )
        p.add_argument(
            "--beam-runner",
            metavar="RUNNER",
            help="build on Apache Beam with this runner (DirectRunner, DataflowRunner, "
            "SparkRunner, FlinkRunner, ...) instead of local processes; "
            "pipeline options follow a `--`",
        )
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_options = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    args = parser.parse_args(argv)
    if beam_options and not args.beam_runner:
        parser.error("pipeline options after -- need --beam-runner")
    if args.beam_runner:
        try:
            import apache_beam  # noqa: F401  (the optional `beam` extra)
        except ImportError as err:
            print(
                f"error: --beam-runner needs Apache Beam ({err}); pip install 'kgan[beam]'",
                file=sys.stderr,
            )
            return 2

    from kgan import records, volumes

    if args.source == "brats":
        try:
            volumes.find_cases(args.dir)
        except volumes.VolumeError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    try:  # the library shows the progress bar and the one-line summary on stderr
        summary = records.build_dataset(
            args.source,
            plane=args.plane,
            size=args.size,
            resize=args.resize,
            data_dir=args.data_dir,
            seed=args.seed,
            workers=args.workers,
            manual_dir=getattr(args, "dir", None),
            patients=getattr(args, "patients", None),
            skip_bad=args.skip_bad,
            beam_runner=args.beam_runner,
            beam_options=beam_options,
        )
    except volumes.VolumeError as err:
        print(f"error: {err}\n(use --skip-bad to record bad cases and go on)", file=sys.stderr)
        return 1
    print(summary)
    return 0
