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
import importlib.machinery
import importlib.util
import os
import sys
import types

import pytest
from torch import nn

from helpers import install_hint, skip_or_fail_in_ci


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
        skip_or_fail_in_ci(f"{package} is not installed ({install_hint(package)})")
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


def published_module(package: str, submodule: str, stubs: tuple = ()) -> types.ModuleType:
    """``package.submodule`` of a published model package (``pip install --no-deps <package>``).

    Skips where the package is not installed, but FAILS under CI (``CI=true``): there the tests of
    published architectures must run. ``stubs`` are packages the module imports only for code the
    tests do not use (e.g. ``audiotools`` for DAC's I/O helpers), replaced by empty modules when absent.
    """
    if importlib.util.find_spec(package) is None:
        message = f"{package} is not installed ({install_hint(package)})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    for name in stubs:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            parent = sys.modules[name] = _Stub(name)
            parent.__path__ = []  # type: ignore[attr-defined]
            for child in ("ml", "data", "core", "log", "callbacks", "transforms"):
                sys.modules[f"{name}.{child}"] = _Stub(f"{name}.{child}")
                setattr(parent, child, sys.modules[f"{name}.{child}"])
    try:
        return import_model_module(package, submodule)
    except pytest.skip.Exception as error:
        if os.environ.get("CI") == "true":
            pytest.fail(str(error))
        raise


class _Stub(types.ModuleType):
    """An empty stand-in module: any name is a placeholder class (``BaseModel`` is ``nn.Module``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        # a spec, so that importlib.util.find_spec (which other packages call to probe) answers for it
        self.__spec__ = importlib.machinery.ModuleSpec(name, None)

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return nn.Module if name == "BaseModel" else type(name, (), {})
