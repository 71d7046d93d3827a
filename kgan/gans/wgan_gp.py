"""WGAN-GP (Gulrajani et al. 2017): a gradient penalty instead of weight clipping."""

from __future__ import annotations

from kgan import losses, names
from kgan.gans.wgan import WGAN

_PAPER = names.PAPER_RECIPES["wgan-gp"].gan_params


class WGANGP(WGAN):
    """WGAN whose critic is kept near 1-Lipschitz by penalising its gradient norm.

    Critic loss: mean f(G(z)) - mean f(x) + lambda * mean (||grad f(x_hat)|| - 1)^2
    on x_hat = alpha x + (1 - alpha) G(z), alpha ~ U(0, 1) drawn once per
    sample (not per pixel). No clipping. The critic must not use batch norm
    (the penalty is per sample); `build_gan` gives it layer norm. The defaults
    and optimiser are Gulrajani et al.'s (`kgan.names.PAPER_RECIPES`). Batching and the critic loop
    are as `WGAN`'s.

    Logged in addition: gradient_penalty (before the lambda factor).

    Args:
      gp_weight: lambda.
      gp_epsilon: small epsilon inside the norm's square root.
      **kwargs: see `WGAN` (clip_value is forced off).
    """

    gan_name = "wgan-gp"
    discriminator_second_derivatives = True
    extra_metrics = ("wasserstein", "gradient_penalty")

    def __init__(
        self,
        generator,
        discriminator,
        *,
        gp_weight: float = _PAPER["gp_weight"],
        gp_epsilon: float = 1e-10,
        **kwargs,
    ):
        kwargs["clip_value"] = None
        kwargs.setdefault("n_critic", _PAPER["n_critic"])
        super().__init__(generator, discriminator, **kwargs)
        self.gp_weight = float(gp_weight)
        self.gp_epsilon = float(gp_epsilon)

    def critic_loss(self, real, fake, conditions):
        loss, logged = super().critic_loss(real, fake, conditions)
        alpha = self.sample_uniform(self.batch_size_of(real))
        penalty = losses.gradient_penalty(
            lambda x: self.discriminate(x, conditions, training=True),
            real,
            fake,
            alpha,
            epsilon=self.gp_epsilon,
        )
        loss = loss + self.gp_weight * penalty
        logged = {**logged, "d_loss": loss, "gradient_penalty": penalty}
        return loss, logged
