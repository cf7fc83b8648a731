"""The error a user's config or files get: named, with the fix, before training starts."""


class ConfigError(ValueError):
    """A config value (or a file it names) that cannot work; raised before training starts."""
