#!/usr/bin/env python
"""Export a training run's generator as a TF Serving SavedModel (see kgan/commands/export.py).

python scripts/export.py --run runs/NAME --out exports/NAME
"""

import sys

from kgan.commands.export import main

if __name__ == "__main__":
    sys.exit(main())
