"""``metrics=auto`` (the default): the FID/IS/KID protocol made for the data's channels.

- 1 channel (digits, MNIST, Fashion-MNIST): the digits extractor, as ``metrics=digits``.
- 3 channels: Inception, as ``metrics=inception``, when its weights are on disk or a
  download (allowed by ``metrics.inception.extractor.allow_download``) succeeds.
  Otherwise the run trains without FID/IS/KID and says so once, at the start, with the
  file to put where; ``metrics=inception`` stops the run instead, as it always has.
- No channels (the 2-D toys): nothing, as the callback does nothing for points.

Only the chosen protocol is instantiated: a run on RGB photos never loads the digits
CNN, and one on digits never looks for Inception weights.
"""

from __future__ import annotations

import logging

from hydra.utils import instantiate
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from ganforge.errors import ConfigError
from ganforge.metrics.callback import ImageMetrics
from ganforge.metrics.extractors import inception as inception_v3

log = logging.getLogger("ganforge")

AUTO = "auto"  # a shortcut left at this keeps the chosen protocol's own value
UNKNOWN = "unknown"  # what conf/metrics/auto.yaml reads as channels where there is no data group


def image_metrics(channels, digits: DictConfig, inception: DictConfig, **shortcuts) -> ImageMetrics:
    """The ``ImageMetrics`` callback of the protocol for ``channels``; see the module docstring.

    ``shortcuts`` (``metrics.num_fake=500`` and the like) apply to whichever protocol is
    chosen, over its own values; ``metrics.digits.*`` and ``metrics.inception.*`` set one.
    """
    if channels == UNKNOWN:
        raise ConfigError(
            "metrics=auto picks by the training data's channels, and this config has no data group "
            "(src/eval.py); pass metrics=digits or metrics=inception"
        )
    overrides = {k: v for k, v in shortcuts.items() if not (isinstance(v, str) and v == AUTO)}
    if channels is None:
        return ImageMetrics(extractor=None)
    if int(channels) == 1:
        log.info("metrics=auto: the digits extractor for 1-channel images")
        return instantiate(OmegaConf.merge(digits, overrides))
    if int(channels) == 3:
        return _inception_or_nothing(OmegaConf.merge(inception, overrides))
    raise ConfigError(
        f"metrics=auto has extractors for 1- and 3-channel images, not data.channels={channels}; "
        "pass metrics=none"
    )


def _inception_or_nothing(protocol: DictConfig) -> ImageMetrics:
    extractor = protocol.extractor
    if extractor.get("weights"):  # a file named by hand: a wrong path is an error, not a fallback
        return instantiate(protocol)
    allow_download = bool(extractor.get("allow_download", True))
    try:
        path = inception_v3.resolve_weights(None, allow_download)
    except inception_v3.InceptionWeightsMissing:
        why = "offline" if allow_download else "metrics.inception.extractor.allow_download=false"
        where = inception_v3.hub_weights_path().parent
        return _metrics_off(f"are not in {where} and cannot be downloaded ({why})")
    if path is not None:
        extractor.weights = str(path)  # found: the extractor need not look (or probe the network) again
        log.info("metrics=auto: the Inception extractor for 3-channel images (%s)", path)
        return instantiate(protocol)
    try:  # online: torch-fidelity downloads the file into torch hub's folder
        built = instantiate(protocol)
    except Exception as err:  # whatever stopped the download: metrics off, and the warning says why
        return _metrics_off(f"could not be downloaded ({type(err).__name__}: {err})".splitlines()[0][:300])
    log.info("metrics=auto: the Inception extractor for 3-channel images (downloaded)")
    return built


def _metrics_off(why: str) -> ImageMetrics:
    _warn_on_rank_zero(
        "metrics=auto: FID/IS/KID are OFF for this run. The data have 3 channels, which the "
        f"digits extractor does not take, and the Inception weights {inception_v3.WEIGHTS_FILE} {why}. "
        f"To turn them on, download {inception_v3.WEIGHTS_URL} and put it at "
        f"{inception_v3.hub_weights_path()} (or pass metrics.inception.extractor.weights=/path/to/"
        f"{inception_v3.WEIGHTS_FILE}). To train without metrics and without this warning: metrics=none."
    )
    return ImageMetrics(extractor=None)


@rank_zero_only  # every DDP rank builds its callbacks; one warning per run is enough
def _warn_on_rank_zero(message: str) -> None:
    log.warning(message)
