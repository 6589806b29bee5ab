"""Fixtures of the conversion tests on published models.

The packages ``encodec``, ``snac`` and ``moshi`` are installed with ``--no-deps`` (extra
``convert``): their top-level ``__init__`` pulls in what the tests do not need and this
machine cannot install (``encodec`` imports ``torchaudio``, which has no build for the
pinned torch; ``snac`` and ``moshi`` import ``huggingface_hub`` to download weights).
:func:`import_model_module` imports a submodule of such a package without running the
package's own ``__init__``, so that only the model code and its light dependencies load.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import pytest

from helpers import skip_or_fail_in_ci


def import_model_module(package: str, submodule: str) -> types.ModuleType:
    """Import ``package.submodule`` without executing ``package/__init__.py``.

    Skips the calling test when the package (or a light dependency of the submodule,
    e.g. ``einops``) is not installed: ``pip install --no-deps encodec snac moshi``
    and ``pip install einops`` (the ``convert`` extra); fails it on CI (``CI=true``).
    """
    name = f"{package}.{submodule}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        skip_or_fail_in_ci(f"{package} is not installed (pip install --no-deps {package})")
    if package not in sys.modules:
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec
        stub.__file__ = spec.origin
        sys.modules[package] = stub
    try:
        return importlib.import_module(name)
    except ImportError as error:
        skip_or_fail_in_ci(f"{name} cannot be imported: {error}")


@pytest.fixture(scope="session")
def encodec_seanet() -> types.ModuleType:
    """``encodec.modules.seanet`` (SEANetEncoder, SEANetDecoder)."""
    return import_model_module("encodec", "modules.seanet")


@pytest.fixture(scope="session")
def snac_layers() -> types.ModuleType:
    """``snac.layers`` (Encoder, Decoder, NoiseBlock)."""
    return import_model_module("snac", "layers")


@pytest.fixture(scope="session")
def moshi_seanet() -> types.ModuleType:
    """``moshi.modules.seanet`` (causal SEANetEncoder, SEANetDecoder with moshi's streaming API)."""
    return import_model_module("moshi", "modules.seanet")
