#!/usr/bin/env python
"""Evaluates an exported generator against real patients it never saw and writes a report.

See kgan/commands/evaluate.py; also `kgan evaluate`.
"""

import sys

from kgan.commands.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
