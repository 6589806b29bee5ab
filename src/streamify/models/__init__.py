"""Built-in models: the RAVE-style model family (trained and shipped), and the demo autoencoder of the tests."""

from streamify.models.checkpoint import load_checkpoint, save_weights
from streamify.models.demo import DEMO_STRIDES, build_demo_autoencoder, demo_signal
from streamify.models.presets import PRESETS, RaveConfig
from streamify.models.rave import RAVE, fold_weight_norm, rave
from streamify.models.shipped import pretrained

__all__ = [
    "DEMO_STRIDES",
    "PRESETS",
    "RAVE",
    "RaveConfig",
    "build_demo_autoencoder",
    "demo_signal",
    "fold_weight_norm",
    "load_checkpoint",
    "pretrained",
    "rave",
    "save_weights",
]
