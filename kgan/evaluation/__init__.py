"""Evaluation of synthetic slices: fidelity, diversity, intensity, Visual Turing Tests,
memorisation and downstream use, each with a floor from held-out real patients.

One module per concern; `report.evaluate` runs them all and writes the report.
No network trained on the internet is used: kgan trains its own small encoder
and classifiers on its own slices (see `encoder`, `cnn`).
"""

from kgan.evaluation.confusion import TuringTable
from kgan.evaluation.sources import SyntheticSource, from_export

__all__ = ["TuringTable", "SyntheticSource", "from_export"]
