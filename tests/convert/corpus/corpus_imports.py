"""Imports of the corpus's published packages: their model modules only, without their heavy ``__init__``.

Each package is installed with ``pip install --no-deps`` (extra ``convert``; see ``.ci/run``). Some
model modules import, for code the corpus never runs, packages this machine does not have (``h5py``
for parallel-wavegan's checkpoint reader, ``huggingface_hub`` for asteroid's hub download): those are
replaced by empty stand-in modules while the model module is imported. parallel-wavegan imports ``scipy.signal.kaiser``, which scipy moved
to ``scipy.signal.windows``: the name is given back before the import.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Dict, Iterable


class PackageMissing(Exception):
    """A package of the corpus is not installed (or its model module cannot be imported)."""


#: module attributes the stand-ins must have at import time
_STUB_ATTRIBUTES: Dict[str, Dict[str, object]] = {
    "huggingface_hub": {"HUGGINGFACE_CO_URL_HOME": "https://huggingface.co/", "PYTORCH_WEIGHTS_NAME": "model.bin"},
}


def _stand_in(name: str) -> bool:
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return False
    module = types.ModuleType(name)
    module.__path__ = []  # type: ignore[attr-defined]
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for attribute, value in _STUB_ATTRIBUTES.get(name, {}).items():
        setattr(module, attribute, value)
    sys.modules[name] = module
    return True


def load(package: str, submodule: str = "", stubs: Iterable[str] = (), skip_init: bool = False) -> types.ModuleType:
    """Import ``package.submodule`` (``package`` alone without ``submodule``).

    ``skip_init``: do not run ``package/__init__.py`` (it imports what the model module does not need).
    ``stubs``: modules replaced by empty stand-ins where they are not installed.

    Raises:
        PackageMissing: the package is not installed, or its module fails to import.
    """
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise PackageMissing(f"{package} is not installed (pip install --no-deps {package}; extra 'convert')")
    standing_in = [name for name in stubs if _stand_in(name)]
    if package == "parallel_wavegan":
        import scipy.signal
        import scipy.signal.windows

        if not hasattr(scipy.signal, "kaiser"):
            scipy.signal.kaiser = scipy.signal.windows.kaiser
    if skip_init and package not in sys.modules and spec.submodule_search_locations:
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec
        stub.__file__ = spec.origin
        sys.modules[package] = stub
    name = f"{package}.{submodule}" if submodule else package
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise PackageMissing(f"{name} cannot be imported: {error}") from error
    finally:  # the model modules keep what they imported; later imports (and probes) must not see stand-ins
        for stand_in in standing_in:
            del sys.modules[stand_in]
