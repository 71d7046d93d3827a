#!/usr/bin/env python
"""Builds a slice dataset (TFRecord shards via TFDS) from BraTS volumes or the phantom cohort.

See kgan/commands/records.py; also `kgan records`.
"""

import sys

from kgan.commands.records import main

if __name__ == "__main__":
    sys.exit(main())
