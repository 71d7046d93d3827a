"""kgan's vocabulary and the papers' recipes: one place per fact, importable from anywhere.

Every other module takes these names from here instead of keeping its own copy, so a new modality,
plane or GAN is added once. This module imports nothing but the standard library (no TensorFlow,
no numpy): the worker processes that slice volumes, the recipe reader and the JAX benchmark all
import it without starting TensorFlow.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

# --- what a slice is ------------------------------------------------------------------------------

#: The four MRI contrasts. A slice record's integer `modality` indexes this tuple, so the order is
#: part of the record format (and of every export's `modality` input).
MODALITIES = ("t1", "t1ce", "t2", "flair")
#: How figures, pages and the sampler's captions spell each modality.
MODALITY_DISPLAY_NAMES = MappingProxyType(
    {"t1": "T1", "t1ce": "T1ce", "t2": "T2", "flair": "FLAIR"}
)
#: The three slicing planes; a record's `plane` indexes this tuple.
PLANES = ("sagittal", "coronal", "axial")
#: Tumour grades; a record's `grade` indexes this tuple (0 where the layout does not say).
GRADES = ("unknown", "LGG", "HGG")
#: The tumour condition of conditional GANs: 0 absent, 1 present.
TUMOUR_CLASSES = 2

# --- where things live ----------------------------------------------------------------------------

#: The dataset home (TFDS data_dir) when none is given: `records/<builder>/<config>/<version>/`.
DEFAULT_DATA_DIR = "records"

# --- the GANs and their papers' recipes -----------------------------------------------------------

#: The GANs kgan trains, by the name recipes, the command line and exports use.
GANS = ("dcgan", "wgan", "wgan-gp", "began")
#: How tables and figures spell each GAN.
GAN_DISPLAY_NAMES = MappingProxyType(
    {"dcgan": "DCGAN", "wgan": "WGAN", "wgan-gp": "WGAN-GP", "began": "BEGAN"}
)


@dataclasses.dataclass(frozen=True)
class PaperRecipe:
    """One GAN's published training recipe.

    Attributes:
      citation: where the values come from.
      optimizer: the fields of `kgan.config.OptimizerConfig` that differ from its defaults (the same
        optimiser for both networks, as in every one of the four papers).
      gan_params: the GAN's own parameters (keyword arguments of its `kgan.gans` class).
    """

    citation: str
    optimizer: Mapping
    gan_params: Mapping


def _recipe(citation: str, optimizer: dict, gan_params: dict) -> PaperRecipe:
    return PaperRecipe(citation, MappingProxyType(optimizer), MappingProxyType(gan_params))


#: The one source of the papers' optimisers, learning rates and GAN parameters: `kgan.config`
#: builds its defaults from it and the GAN classes take their keyword defaults from it.
PAPER_RECIPES = MappingProxyType(
    {
        "dcgan": _recipe(
            "Radford et al. 2016",
            {"name": "adam", "learning_rate": 2e-4, "beta_1": 0.5, "beta_2": 0.999},
            {},
        ),
        "wgan": _recipe(
            "Arjovsky et al. 2017; Han et al. 2017",
            {"name": "rmsprop", "learning_rate": 5e-5, "rho": 0.9},
            {"n_critic": 5, "clip_value": 0.01},
        ),
        "wgan-gp": _recipe(
            "Gulrajani et al. 2017",
            {"name": "adam", "learning_rate": 1e-4, "beta_1": 0.0, "beta_2": 0.9},
            {"n_critic": 5, "gp_weight": 10.0},
        ),
        # Adam 1e-4 decayed; the paper decays on a stalled convergence measure, the widely used
        # reimplementation halves the rate every 100,000 steps with a floor of 2e-5.
        "began": _recipe(
            "Berthelot et al. 2017",
            {
                "name": "adam",
                "learning_rate": 1e-4,
                "beta_1": 0.5,
                "beta_2": 0.999,
                "decay_rate": 0.5,
                "decay_steps": 100_000,
                "min_learning_rate": 2e-5,
            },
            {"gamma": 0.5, "lambda_k": 0.001},
        ),
    }
)

# --- evaluation's random streams ------------------------------------------------------------------

#: Offsets added to an evaluation's seed so that each random choice has a stream of its own.
#: "split" and "encoder" share offset 0, kept so on purpose: the modality encoder is trained once
#: and cached on disk (`reports/encoder/<dataset>-<size>.keras`, not keyed by seed), so another
#: offset would make a freshly trained encoder differ from every cached one and a report's numbers
#: depend on whether the cache existed. The two streams seed different things (a patient
#: permutation, the encoder's weights and shuffles), so sharing the number couples no comparison.
SEED_OFFSETS = MappingProxyType(
    {
        "split": 0,
        "synthetic": 1,
        "synthetic_set2": 2,
        "swd": 3,
        "bootstrap": 4,
        "pairs": 5,
        "c2st": 6,
        "downstream": 7,
        "encoder": 0,
        "subsample": 8,
        "extra_draws": 9,
        "augment_patients": 10,
    }
)

__all__ = [
    "DEFAULT_DATA_DIR",
    "GANS",
    "GAN_DISPLAY_NAMES",
    "GRADES",
    "MODALITIES",
    "MODALITY_DISPLAY_NAMES",
    "PAPER_RECIPES",
    "PLANES",
    "PaperRecipe",
    "SEED_OFFSETS",
    "TUMOUR_CLASSES",
]
