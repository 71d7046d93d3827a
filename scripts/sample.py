#!/usr/bin/env python
"""Draw synthetic slices from an exported generator (no kgan model code needed).

See kgan/commands/sample.py; also `kgan sample`.
"""

import sys

from kgan.commands.sample import main

if __name__ == "__main__":
    sys.exit(main())
