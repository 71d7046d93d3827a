"""Keras optimisers from a recipe's optimiser sections, and the one learning-rate schedule kgan
adds.

`kgan.config` describes an optimiser (`OptimizerConfig`, TensorFlow-free); this module turns the
description into a Keras optimiser. Training, the benchmarks and `GAN.compile` without optimisers
all build them here, from the recipe or from the paper's recipe (`kgan.names.PAPER_RECIPES`).
"""

from __future__ import annotations

import keras

from kgan import config as cfg


@keras.saving.register_keras_serializable(package="kgan")
class StepDecayWithFloor(keras.optimizers.schedules.LearningRateSchedule):
    """lr(t) = max(floor, lr0 * rate ** floor(t / steps)): BEGAN's staircase decay with a floor.

    t is the optimiser's own update count, so a WGAN critic (n_critic updates per step) decays
    n_critic times faster in steps than its generator.
    """

    def __init__(self, initial_learning_rate, decay_rate, decay_steps, min_learning_rate=0.0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_rate = float(decay_rate)
        self.decay_steps = int(decay_steps)
        self.min_learning_rate = float(min_learning_rate)

    def __call__(self, step):
        ops = keras.ops
        k = ops.floor(ops.cast(step, "float32") / float(self.decay_steps))
        lr = self.initial_learning_rate * ops.power(self.decay_rate, k)
        return ops.maximum(lr, self.min_learning_rate)

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_rate": self.decay_rate,
            "decay_steps": self.decay_steps,
            "min_learning_rate": self.min_learning_rate,
        }


def make_schedule(o: cfg.OptimizerConfig):
    """The learning rate: a constant, or a staircase decay held above a floor."""
    if o.decay_rate >= 1.0:
        return o.learning_rate
    return StepDecayWithFloor(o.learning_rate, o.decay_rate, o.decay_steps, o.min_learning_rate)


def make_optimizer(o: cfg.OptimizerConfig) -> keras.optimizers.Optimizer:
    """A Keras optimiser from its recipe section."""
    lr = make_schedule(o)
    if o.name == "adam":
        return keras.optimizers.Adam(lr, beta_1=o.beta_1, beta_2=o.beta_2, epsilon=o.epsilon)
    if o.name == "rmsprop":
        return keras.optimizers.RMSprop(lr, rho=o.rho, momentum=o.momentum, epsilon=o.epsilon)
    if o.name == "sgd":
        return keras.optimizers.SGD(lr, momentum=o.momentum)
    raise cfg.ConfigError(f"unknown optimizer {o.name!r}; choose from {cfg.OPTIMIZERS}")


def from_recipe(
    config: cfg.Config,
) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """(d_optimizer, g_optimizer) of a recipe: two separate objects, as `GAN.compile` needs."""
    return make_optimizer(config.optimizer.d), make_optimizer(config.optimizer.g)


def paper_optimizers(gan: str) -> tuple[keras.optimizers.Optimizer, keras.optimizers.Optimizer]:
    """(d_optimizer, g_optimizer) of a GAN's paper (`kgan.names.PAPER_RECIPES`)."""
    return make_optimizer(cfg.paper_optimizer(gan)), make_optimizer(cfg.paper_optimizer(gan))


__all__ = [
    "StepDecayWithFloor",
    "from_recipe",
    "make_optimizer",
    "make_schedule",
    "paper_optimizers",
]
