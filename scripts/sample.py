#!/usr/bin/env python
"""Draw synthetic slices from an exported generator (no kgan model code needed).

    python scripts/sample.py --model exports/NAME/1 --count 16 --out samples/ --format grid
    python scripts/sample.py --model exports/NAME --count 5000 --out synth/ --format tfrecord

Formats: grid (one captioned PNG, slices shown at --display-size px), png (one file per
slice), nifti (one stack per modality), tfrecord (kgan.schema shards that
kgan.pipeline.load_slices reads). Prints the files written.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="export version directory, or base directory (newest version)")
    parser.add_argument("--count", type=int, required=True, help="number of slices")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--format", default="grid", choices=("grid", "png", "nifti", "tfrecord"))
    parser.add_argument("--seed", type=int, default=0, help="same seed, same slices")
    parser.add_argument("--modality", help="t1, t1ce, t2 or flair (conditional generators; "
                                           "default: a balanced mix of the trained ones)")
    parser.add_argument("--tumour", type=int, choices=(0, 1),
                        help="conditional generators: 1 tumour, 0 none (default: both, balanced)")
    parser.add_argument("--display-size", type=int, default=None,
                        help="pixels per slice side in grid/png output (grid default 256; "
                             "png default native size)")
    parser.add_argument("--resample", default="nearest", choices=("nearest", "bicubic"),
                        help="upsampling filter for --display-size")
    parser.add_argument("--plane", help="tfrecord: plane label when the export's metadata has none")
    parser.add_argument("--split", default="train", help="tfrecord: split name in the file names")
    parser.add_argument("--shards", type=int, default=1, help="tfrecord: number of shard files")
    args = parser.parse_args(argv)

    from kgan.sampling import write_samples

    try:
        paths = write_samples(
            args.model, args.out, count=args.count, fmt=args.format, seed=args.seed,
            modality=args.modality, tumour=args.tumour, display_size=args.display_size,
            resample=args.resample, plane=args.plane, split=args.split, shards=args.shards)
    except (ValueError, FileNotFoundError) as e:  # a request the model cannot serve: say why
        parser.exit(2, f"{parser.prog}: error: {e}\n")
    print("\n".join(paths))


if __name__ == "__main__":
    main()
