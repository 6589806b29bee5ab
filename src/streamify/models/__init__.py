"""Built-in models: small streaming networks for the demo, the tests and the examples."""

from streamify.models.demo import DEMO_STRIDES, build_demo_autoencoder, demo_signal

__all__ = ["DEMO_STRIDES", "build_demo_autoencoder", "demo_signal"]
