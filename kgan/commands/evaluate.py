"""Evaluates an exported generator against real patients it never saw and writes a report.

    python scripts/evaluate.py --model exports/NAME/VERSION [--data DATASET] [--reference
    auto|heldout|DATASET]
                               [--out DIR] [--seed S] [--samples N] [--encoder PATH]

--data defaults to the training dataset the export's metadata names. The
real patients compared with are, by default, the evaluation cohort (new
phantom patients, built once under the records home) for phantom data, or
the held-out splits of a real dataset. Writes DIR/report.json, DIR/report.md
and DIR/figures/*.png (default DIR: reports/NAME-VERSION). See
docs/evaluation.md for what each number means.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model",
        required=True,
        help="export directory exports/NAME/VERSION (or exports/NAME: newest)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="the generator's training dataset (default: the one its export metadata names)",
    )
    parser.add_argument(
        "--reference",
        default="auto",
        help="real patients to compare with: auto (evaluation cohort for phantom data, "
        "held-out splits otherwise), heldout, or a dataset of new patients",
    )
    parser.add_argument(
        "--data-dir", default=None, help="dataset home for names (default records/)"
    )
    parser.add_argument(
        "--out", default=None, help="report directory (default reports/NAME-VERSION)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="main seed; every random choice derives from it"
    )
    parser.add_argument(
        "--samples", type=int, default=1000, help="synthetic slices per set (two sets are drawn)"
    )
    parser.add_argument(
        "--eval-patients", type=int, default=24, help="evaluation cohort size (phantom)"
    )
    parser.add_argument(
        "--augment-patients",
        type=int,
        default=4,
        help="real patients the augmentation test's classifier is trained on",
    )
    parser.add_argument(
        "--resamples", type=int, default=1000, help="bootstrap resamples (SWD: --swd-resamples)"
    )
    parser.add_argument("--swd-resamples", type=int, default=100)
    parser.add_argument(
        "--encoder",
        default=None,
        help="feature encoder .keras file, trained there if absent "
        "(default reports/encoder/<dataset>-<size>.keras)",
    )
    parser.add_argument("--encoder-epochs", type=int, default=12)
    parser.add_argument("--classifier-epochs", type=int, default=5)
    parser.add_argument(
        "--min-steps",
        type=int,
        default=200,
        help="fewest updates the two-sample classifier gets, however small its data",
    )
    parser.add_argument(
        "--augment-min-steps",
        type=int,
        default=None,
        help="fewest updates each tumour classifier of the augmentation test gets "
        "(default: kgan.evaluation.downstream.MIN_STEPS, 600: fewer and it cannot see a gain)",
    )
    args = parser.parse_args(argv)
    if args.samples < 4:
        parser.error("--samples must be at least 4")

    from kgan.evaluation import downstream, report, sources
    from kgan.evaluation.cohort import EvaluationInputError

    try:
        source = sources.from_export(args.model)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"evaluate.py: cannot load the generator at {args.model}: {e}", file=sys.stderr)
        return 2
    out = args.out
    if out is None:
        version_dir = os.path.normpath(source.metadata.get("export", args.model))
        out = os.path.join(
            "reports",
            f"{os.path.basename(os.path.dirname(version_dir))}-{os.path.basename(version_dir)}",
        )
    try:
        report.evaluate(
            source,
            args.data,
            out,
            reference=args.reference,
            seed=args.seed,
            samples=args.samples,
            data_dir=args.data_dir,
            encoder_path=args.encoder,
            encoder_epochs=args.encoder_epochs,
            classifier_epochs=args.classifier_epochs,
            min_steps=args.min_steps,
            eval_patients=args.eval_patients,
            augment_patients=args.augment_patients,
            augment_min_steps=(
                downstream.MIN_STEPS if args.augment_min_steps is None else args.augment_min_steps
            ),
            resamples=args.resamples,
            swd_resamples=args.swd_resamples,
            model_label=args.model,
            log=lambda line: print(line, flush=True),
        )
    except EvaluationInputError as e:
        print(f"evaluate.py: {e}", file=sys.stderr)
        return 2
    return 0
