"""LightningModules: the shared adversarial base and one file per GAN family."""
