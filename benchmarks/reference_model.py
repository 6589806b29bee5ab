"""The benchmark's reference model (a stand-in until a RAVE-style model lands in the package).

It lives in :mod:`streamify.bench.reference` so that the ``streamify bench`` command finds it;
this module re-exports it for scripts in ``benchmarks/``::

    from reference_model import RAVE_V2, build_reference, build_cached_conv, load_same_weights
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import streamify.bench.reference  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from streamify.bench.reference import (  # noqa: E402
    CONFIGS,
    RAVE_TINY,
    RAVE_V2,
    RAVE_V2_SMALL,
    CachedConvAutoencoder,
    RaveAutoencoder,
    RaveConfig,
    build_cached_conv,
    build_reference,
    folded_copy,
    load_same_weights,
    model_facts,
    overlap_add_context,
    reset_cached_conv,
)

__all__ = [
    "CONFIGS",
    "RAVE_TINY",
    "RAVE_V2",
    "RAVE_V2_SMALL",
    "CachedConvAutoencoder",
    "RaveAutoencoder",
    "RaveConfig",
    "build_cached_conv",
    "build_reference",
    "folded_copy",
    "load_same_weights",
    "model_facts",
    "overlap_add_context",
    "reset_cached_conv",
]

if __name__ == "__main__":
    for config in (RAVE_V2, RAVE_V2_SMALL):
        facts = model_facts(build_reference(config))
        print(
            f"{config.name}: {facts.parameters / 1e6:.2f} M parameters, "
            f"{facts.macs_per_second / 1e9:.2f} G multiply-accumulates per second of audio, "
            f"ratio {facts.total_ratio}, weights {facts.weight_bytes / 2**20:.1f} MiB"
        )
