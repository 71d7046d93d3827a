"""The human Visual Turing Test kit.

    python scripts/turing_test.py build --model exports/NAME/VERSION [--data DATASET] --out DIR
                                        [--real 50 --synthetic 50] [--seed S] [--key PATH]
    python scripts/turing_test.py score ANSWERS KEY [--json]

`build` takes real slices from patients the generator never saw: by default
the evaluation cohort (phantom) or the held-out split of the training
dataset its export metadata names; --data DATASET uses that dataset's test
split. `build` writes DIR/turing_test.html (blinded, self-contained: send DIR to the
rater) and the answer key beside it, DIR.key.json (keep it). The rater opens
the page, answers, and exports a JSON file; `score` prints the paper's table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the blinded page and its key")
    b.add_argument("--model", required=True, help="export directory exports/NAME/VERSION")
    b.add_argument(
        "--data",
        default=None,
        help="slice dataset whose test split gives the real slices (default: the evaluation "
        "cohort, or the held-out split of the training dataset the export names)",
    )
    b.add_argument("--data-dir", default=None)
    b.add_argument("--out", required=True, help="folder for the page")
    b.add_argument("--real", type=int, default=50)
    b.add_argument("--synthetic", type=int, default=50)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument(
        "--key", default=None, help="answer key path (default OUT.key.json, outside OUT)"
    )
    b.add_argument(
        "--display-size", type=int, default=384, help="slice size on screen in CSS pixels"
    )
    b.add_argument(
        "--encoder",
        default=None,
        help="evaluation encoder, to label unconditional samples' modality",
    )
    s = sub.add_parser("score", help="score exported answers against the key")
    s.add_argument("answers")
    s.add_argument("key")
    s.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)

    from kgan.evaluation import turing_test

    if args.command == "score":
        try:
            result = turing_test.score(args.answers, args.key)
        except (FileNotFoundError, ValueError) as e:
            print(f"turing_test.py score: {e}", file=sys.stderr)
            return 2
        if args.json:
            print(
                json.dumps(
                    {
                        "test_id": result["test_id"],
                        "rater": result["rater"],
                        "unanswered": result["unanswered"],
                        **result["table"].to_dict(),
                        "per_modality": {m: t.to_dict() for m, t in result["per_modality"].items()},
                    },
                    indent=2,
                )
            )
        else:
            print(turing_test.score_text(result))
        return 0

    from kgan.evaluation import report, sources
    from kgan.evaluation.cohort import EvaluationInputError

    try:
        source = sources.from_export(args.model)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(
            f"turing_test.py build: cannot load the generator at {args.model}: {e}", file=sys.stderr
        )
        return 2

    def log(line):
        print(line, flush=True)

    try:
        if args.data is None:
            inputs = report.resolve_inputs(source, None, "auto", args.data_dir, log=log)
            data, splits, train_data = (
                inputs["reference"],
                inputs["reference_splits"],
                inputs["data"],
            )
            log(f"real slices from the {inputs['reference_kind']} ({data})")
        else:
            inputs = report.resolve_inputs(source, args.data, "heldout", args.data_dir, log=log)
            data, splits, train_data = args.data, ["test"], args.data
    except EvaluationInputError as e:
        print(f"turing_test.py build: {e}", file=sys.stderr)
        return 2
    turing_test.build(
        source,
        data,
        args.out,
        real=args.real,
        synthetic=args.synthetic,
        seed=args.seed,
        data_dir=args.data_dir,
        key_path=args.key,
        display_size=args.display_size,
        encoder_path=args.encoder,
        splits=splits,
        train_data=train_data,
        log=log,
    )
    return 0
