"""The `kgan` command: `kgan <command> [args]`, one subcommand per program in kgan/commands.

Installed as a console script, so it works from a wheel outside the clone; `scripts/*.py` call
the same `main` functions.
"""

from __future__ import annotations

import importlib
import sys

#: subcommand -> module in kgan.commands holding its `main(argv)` (and its docstring).
COMMANDS = {
    "records": "records",
    "train": "train",
    "export": "export",
    "sample": "sample",
    "evaluate": "evaluate",
    "turing-test": "turing_test",
}


def usage() -> str:
    lines = [
        "usage: kgan <command> [options]   (kgan <command> --help for its options)",
        "",
        "commands:",
    ]
    for name, module in COMMANDS.items():
        doc = importlib.import_module(f"kgan.commands.{module}").__doc__ or ""
        lines.append(f"  {name:<12} {doc.strip().splitlines()[0]}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"kgan: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"kgan.commands.{COMMANDS[name]}")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
