"""Counts of the benchmark's reference models: ``python benchmarks/reference_model.py``.

The models are streamify's own RAVE (``streamify.models.rave``, preset ``v2`` and a reduced ``v2``),
built by :mod:`harness.reference` with their cached_conv twin; scripts in ``benchmarks/`` import
them from there.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import streamify  # noqa: F401
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from harness.reference import RAVE_V2, RAVE_V2_SMALL, build_reference, model_facts  # noqa: E402

if __name__ == "__main__":
    for config in (RAVE_V2, RAVE_V2_SMALL):
        facts = model_facts(build_reference(config), config.name)
        print(
            f"{config.name}: {facts.parameters / 1e6:.2f} M parameters, "
            f"{facts.macs_per_second / 1e9:.2f} G multiply-accumulates per second of audio, "
            f"ratio {facts.total_ratio}, weights {facts.weight_bytes / 2**20:.1f} MiB, "
            f"context {facts.context_left} / {facts.context_right} samples"
        )
