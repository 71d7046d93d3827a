"""Draw synthetic slices from an exported generator (no kgan model code needed).

    python scripts/sample.py --model exports/NAME/1 --count 16 --out samples/ --format grid
    python scripts/sample.py --model exports/NAME --count 5000 --out synth/ --format tfrecord

Formats: grid (one captioned PNG, slices shown at --display-size px), png (one file per
slice), nifti (one stack per modality), tfrecord (kgan.schema shards that
kgan.pipeline.load_slices reads). Shows one progress bar (rate, ETA) on stderr and ends with
a one-line summary there; stdout lists the files written, or, past 20 files, only the
kgan_samples.json manifest that lists them.
"""

import argparse

from kgan import names

#: Data files listed on stdout at most; more are listed in the manifest only.
MAX_LISTED = 20


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        required=True,
        help="export version directory, or base directory (newest version)",
    )
    parser.add_argument("--count", type=int, required=True, help="number of slices")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--format", default="grid", choices=("grid", "png", "nifti", "tfrecord"))
    parser.add_argument("--seed", type=int, default=0, help="same seed, same slices")
    parser.add_argument(
        "--modality",
        help="t1, t1ce, t2 or flair (conditional generators; "
        "default: a balanced mix of the trained ones)",
    )
    parser.add_argument(
        "--tumour",
        type=int,
        choices=(0, 1),
        help="conditional generators: 1 tumour, 0 none (default: both, balanced)",
    )
    parser.add_argument(
        "--display-size",
        type=int,
        default=None,
        help="pixels per slice side in grid/png output (grid default 256; png default native size)",
    )
    parser.add_argument(
        "--resample",
        default="nearest",
        choices=("nearest", "bicubic"),
        help="upsampling filter for --display-size",
    )
    parser.add_argument(
        "--plane",
        choices=names.PLANES,
        help="tfrecord and nifti: the plane when the export's metadata has none",
    )
    parser.add_argument("--split", default="train", help="tfrecord: split name in the file names")
    parser.add_argument("--shards", type=int, default=1, help="tfrecord: number of shard files")
    args = parser.parse_args(argv)

    from kgan.sampling import write_samples

    try:
        paths = write_samples(
            args.model,
            args.out,
            count=args.count,
            fmt=args.format,
            seed=args.seed,
            modality=args.modality,
            tumour=args.tumour,
            display_size=args.display_size,
            resample=args.resample,
            plane=args.plane,
            split=args.split,
            shards=args.shards,
            progress=True,
        )
    except (ValueError, FileNotFoundError) as e:  # a request the model cannot serve: say why
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    # 5,000 PNGs are not 5,001 lines of output: past MAX_LISTED the manifest lists them.
    print("\n".join(paths if len(paths) <= MAX_LISTED + 1 else paths[-1:]))
