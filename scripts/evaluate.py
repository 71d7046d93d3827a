#!/usr/bin/env python
"""Evaluates an exported generator against held-out real patients and writes a report.

    python scripts/evaluate.py --model exports/NAME/VERSION --data DATASET [--out DIR]
                               [--seed S] [--samples N] [--encoder PATH]

Writes DIR/report.json, DIR/report.md and DIR/figures/*.png (default DIR:
reports/NAME-VERSION). See docs/evaluation.md for what each number means.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="export directory exports/NAME/VERSION (or exports/NAME: newest)")
    parser.add_argument("--data", required=True, help="slice dataset: a shard directory or a name like phantom_slices/sagittal_64")
    parser.add_argument("--data-dir", default=None, help="dataset home for names (default records/)")
    parser.add_argument("--out", default=None, help="report directory (default reports/NAME-VERSION)")
    parser.add_argument("--seed", type=int, default=0, help="main seed; every random choice derives from it")
    parser.add_argument("--samples", type=int, default=1000, help="synthetic slices per set (two sets are drawn)")
    parser.add_argument("--encoder", default=None,
                        help="feature encoder .keras file, trained there if absent "
                             "(default reports/encoder/<dataset>-<size>.keras)")
    parser.add_argument("--encoder-epochs", type=int, default=12)
    parser.add_argument("--classifier-epochs", type=int, default=5)
    parser.add_argument("--max-train-slices", type=int, default=4000,
                        help="real training slices used by the downstream classifier")
    parser.add_argument("--min-steps", type=int, default=200,
                        help="fewest updates each small classifier gets, however small its data")
    args = parser.parse_args(argv)
    if args.samples < 4:
        parser.error("--samples must be at least 4")

    from kgan.evaluation import report, sources

    try:
        source = sources.from_export(args.model)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"evaluate.py: cannot load the generator at {args.model}: {e}", file=sys.stderr)
        return 2
    out = args.out
    if out is None:
        version_dir = os.path.normpath(source.metadata.get("export", args.model))
        out = os.path.join("reports", f"{os.path.basename(os.path.dirname(version_dir))}-{os.path.basename(version_dir)}")
    report.evaluate(source, args.data, out, seed=args.seed, samples=args.samples,
                    data_dir=args.data_dir, encoder_path=args.encoder,
                    encoder_epochs=args.encoder_epochs, classifier_epochs=args.classifier_epochs,
                    max_train_slices=args.max_train_slices, min_steps=args.min_steps, model_label=args.model,
                    log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
