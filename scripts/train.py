#!/usr/bin/env python
"""Train a GAN on brain MRI slices: the product's main job (see kgan/commands/train.py).

python scripts/train.py --gan began
"""

import sys

from kgan.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
