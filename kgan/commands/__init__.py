"""The command-line programs, one module each; `scripts/*.py` and the `kgan` command call them."""
