"""The Visual Turing Test table of Han et al. (MIRU 2017), for people and classifiers alike.

The paper's physician saw 50 real and 50 synthetic slices and its table reads::

                      selected as real   selected as synthetic
    ground truth real        18                  32
    ground truth synt        15                  35

with accuracy 53%, sensitivity 36.00%, specificity 70.00%, LR+ 1.20, LR- 0.91.
So "positive" means *real*: sensitivity is the share of real slices called
real (18/50) and specificity the share of synthetic slices called synthetic
(35/50). A low accuracy can hide a rater who calls everything synthetic, which
is why all of these numbers are reported, never accuracy alone.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import stats

REAL = "real"
SYNTHETIC = "synthetic"


@dataclasses.dataclass(frozen=True)
class TuringTable:
    """Confusion counts of a real-vs-synthetic test, rows = ground truth.

    Attributes:
      real_as_real: real slices selected as real (true positives).
      real_as_synthetic: real slices selected as synthetic.
      synthetic_as_real: synthetic slices selected as real (the generator's wins).
      synthetic_as_synthetic: synthetic slices selected as synthetic.
    """

    real_as_real: int
    real_as_synthetic: int
    synthetic_as_real: int
    synthetic_as_synthetic: int

    @classmethod
    def from_labels(cls, truth_real, selected_real) -> TuringTable:
        """Counts from two boolean arrays: is the slice real, was it called real."""
        truth = np.asarray(truth_real, bool)
        chosen = np.asarray(selected_real, bool)
        if truth.shape != chosen.shape:
            raise ValueError(f"truth {truth.shape} and answers {chosen.shape} differ in shape")
        return cls(
            int(np.sum(truth & chosen)),
            int(np.sum(truth & ~chosen)),
            int(np.sum(~truth & chosen)),
            int(np.sum(~truth & ~chosen)),
        )

    @property
    def n_real(self) -> int:
        return self.real_as_real + self.real_as_synthetic

    @property
    def n_synthetic(self) -> int:
        return self.synthetic_as_real + self.synthetic_as_synthetic

    @property
    def total(self) -> int:
        return self.n_real + self.n_synthetic

    @property
    def correct(self) -> int:
        return self.real_as_real + self.synthetic_as_synthetic

    @property
    def accuracy(self) -> float:
        return _ratio(self.correct, self.total)

    @property
    def sensitivity(self) -> float:
        """Real slices called real, over real slices (the paper's 36% = 18/50)."""
        return _ratio(self.real_as_real, self.n_real)

    @property
    def specificity(self) -> float:
        """Synthetic slices called synthetic, over synthetic slices (70% = 35/50)."""
        return _ratio(self.synthetic_as_synthetic, self.n_synthetic)

    @property
    def positive_likelihood_ratio(self) -> float:
        """sensitivity / (1 - specificity); 1 means the answers carry no information."""
        return _ratio(self.sensitivity, 1.0 - self.specificity)

    @property
    def negative_likelihood_ratio(self) -> float:
        """(1 - sensitivity) / specificity; 1 means the answers carry no information."""
        return _ratio(1.0 - self.sensitivity, self.specificity)

    @property
    def prevalence(self) -> float:
        """Share of real slices in the test (the paper's "disease prevalence", 50%)."""
        return _ratio(self.n_real, self.total)

    def binomial_p(self, alternative: str = "two-sided") -> float:
        """Exact binomial test of the correct count against chance (p = 0.5)."""
        if self.total == 0:
            return float("nan")
        return float(stats.binomtest(self.correct, self.total, 0.5, alternative=alternative).pvalue)

    def to_dict(self) -> dict:
        """Every number of the paper's table, JSON-ready (NaN becomes None)."""
        out = {
            "counts": {
                "real_selected_as_real": self.real_as_real,
                "real_selected_as_synthetic": self.real_as_synthetic,
                "synthetic_selected_as_real": self.synthetic_as_real,
                "synthetic_selected_as_synthetic": self.synthetic_as_synthetic,
            },
            "n_real": self.n_real,
            "n_synthetic": self.n_synthetic,
            "accuracy": self.accuracy,
            "sensitivity": self.sensitivity,
            "specificity": self.specificity,
            "positive_likelihood_ratio": self.positive_likelihood_ratio,
            "negative_likelihood_ratio": self.negative_likelihood_ratio,
            "prevalence_real": self.prevalence,
            "binomial_p_two_sided": self.binomial_p("two-sided"),
            "binomial_p_greater": self.binomial_p("greater"),
        }
        return {k: _finite_or_none(v) for k, v in out.items()}

    def markdown(self) -> str:
        """The table and its summary numbers as Markdown, laid out like the paper's."""
        lines = [
            "| | selected as real | selected as synthetic |",
            "|---|---:|---:|",
            f"| ground truth real | {self.real_as_real} | {self.real_as_synthetic} |",
            f"| ground truth synthetic | {self.synthetic_as_real} | "
            f"{self.synthetic_as_synthetic} |",
            "",
            f"- accuracy: {_pct(self.accuracy)} ({self.correct}/{self.total}; chance = 50%)",
            f"- sensitivity (real called real): {_pct(self.sensitivity)}",
            f"- specificity (synthetic called synthetic): {_pct(self.specificity)}",
            f"- positive likelihood ratio: {_num(self.positive_likelihood_ratio)}",
            f"- negative likelihood ratio: {_num(self.negative_likelihood_ratio)}",
            f"- prevalence of real slices: {_pct(self.prevalence)}",
            f"- exact binomial test against chance: p = {_num(self.binomial_p(), 4)} (two-sided), "
            f"p = {_num(self.binomial_p('greater'), 4)} (better than chance)",
        ]
        return "\n".join(lines)


def _ratio(a: float, b: float) -> float:
    if b == 0:
        return float("inf") if a > 0 else float("nan")
    return a / b


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{100 * value:.2f}%"


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.{digits}f}")
