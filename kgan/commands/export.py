"""Export a training run's generator as a TF Serving SavedModel.

    python scripts/export.py --run runs/wgan_sagittal_64 --out exports/wgan_sagittal_64

writes exports/wgan_sagittal_64/<next integer version>/ and prints its path.
See docs/serving.md for the signatures and how to serve it.
"""

import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", required=True, help="training run directory (config.json, generator.keras)"
    )
    parser.add_argument("--out", required=True, help="export base directory, e.g. exports/NAME")
    parser.add_argument(
        "--max-count",
        type=int,
        default=1024,
        help="largest batch one request may ask for (default 1024)",
    )
    args = parser.parse_args(argv)

    from kgan.export import export_run

    try:
        print(export_run(args.run, args.out, max_count=args.max_count))
    except (ValueError, FileNotFoundError) as e:  # bad run directory: say why, no traceback
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    return 0
