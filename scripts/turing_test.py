#!/usr/bin/env python
"""The human Visual Turing Test kit (see kgan/commands/turing_test.py; also `kgan turing-test`)."""

import sys

from kgan.commands.turing_test import main

if __name__ == "__main__":
    sys.exit(main())
