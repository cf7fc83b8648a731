"""Generator and discriminator architectures.

Every generator has ``latent_dim`` and ``forward(z, labels=None)``; every
discriminator has ``forward(x, labels=None)`` returning one logit per sample.
Nets hold no training code: losses, schedules and optimizers live elsewhere.
"""
