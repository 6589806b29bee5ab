"""Importing acids-rave (the ``rave`` package, 2.3.x) next to a current torch, scipy and numpy.

acids-rave pins an old stack (pytorch-lightning 1.9, scipy 1.10, torchaudio of its time) and imports,
at module level, packages that only its training and data code use. Building a trained model needs
none of them. :func:`import_rave` imports the package so that the model classes load:

* the training- and data-only packages that are not installed (``torchaudio``, ``librosa``, ``lmdb``,
  ``GPUtil``, ``udls``, ``sklearn``, and for its data code ``requests``, ``yaml``, ``tqdm``) are replaced, for the import only, by empty stand-in modules whose
  names are placeholder modules (the losses that build a ``torchaudio`` spectrogram get a module without
  computation; the export never calls them). Installed packages are used as they are;
* the two scipy names acids-rave's PQMF uses that current scipy removed are bridged for its module only:
  ``scipy.signal.kaiser`` (now ``scipy.signal.windows.kaiser``) and the ``nyq`` argument of ``firwin``
  (now ``fs = 2 nyq``); ``kaiserord`` gets the scalar that numpy 2 no longer converts from a 1-element array.

The stand-ins are taken out of ``sys.modules`` after the import (acids-rave's modules keep their own
references), so that other code probing for those packages does not see them.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, Dict, List

from torch import nn

from streamify.layers.base import StreamingError

#: how to install acids-rave next to a current torch (see docs/rave.md)
INSTALL_HINT = (
    "pip install 'streamify[rave]' && pip install --no-deps acids-rave==2.3.1 (its own pins would replace torch, "
    "scipy and Lightning; see docs/rave.md)"
)
#: packages acids-rave imports at module level for training and data loading only
TRAINING_ONLY = ("torchaudio", "librosa", "lmdb", "GPUtil", "udls", "sklearn", "requests", "yaml", "tqdm")
#: submodules of those that acids-rave imports by name
_SUBMODULES = {
    "torchaudio": ("transforms", "functional"),
    "udls": ("generated", "transforms"),
    "sklearn": ("decomposition",),
}


class _Placeholder(nn.Module):
    """What a stand-in module gives for any name: a module that accepts any arguments and computes nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise StreamingError(
            "streamify: a training-only part of acids-rave was called (its package is not installed and was "
            "replaced by a stand-in for the import); install it to use it"
        )


class _StandIn(types.ModuleType):
    """An empty module: any public name is a :class:`_Placeholder` subclass of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__spec__ = importlib.machinery.ModuleSpec(name, None)
        self.__path__: List[str] = []

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (_Placeholder,), {"__module__": self.__name__})


def _stand_ins() -> Dict[str, types.ModuleType]:
    """Stand-ins for the training-only packages that are not installed, by module name."""
    made: Dict[str, types.ModuleType] = {}
    for package in TRAINING_ONLY:
        if package in sys.modules or importlib.util.find_spec(package) is not None:
            continue
        parent = made[package] = _StandIn(package)
        for child in _SUBMODULES.get(package, ()):
            module = made[f"{package}.{child}"] = _StandIn(f"{package}.{child}")
            setattr(parent, child, module)
    return made


def _bridge_scipy(pqmf: types.ModuleType) -> None:
    """Give acids-rave's PQMF module the scipy behaviour it was written for (see the module docstring)."""
    import numpy as np
    import scipy.signal

    firwin, kaiserord = scipy.signal.firwin, scipy.signal.kaiserord

    def firwin_with_nyq(*args: Any, nyq: Any = None, **kwargs: Any) -> Any:
        if nyq is not None:
            kwargs["fs"] = 2 * nyq
        return firwin(*args, **kwargs)

    def kaiserord_of_scalar(ripple: Any, width: Any) -> Any:
        return kaiserord(ripple, float(np.asarray(width).reshape(-1)[0]))

    pqmf.firwin = firwin_with_nyq
    pqmf.kaiserord = kaiserord_of_scalar


def _import_pqmf() -> types.ModuleType:
    """``rave.pqmf``, imported with ``scipy.signal.kaiser`` present for its ``from ... import``."""
    import scipy.signal
    import scipy.signal.windows

    added = not hasattr(scipy.signal, "kaiser")
    if added:
        scipy.signal.kaiser = scipy.signal.windows.kaiser
    try:
        pqmf = importlib.import_module("rave.pqmf")
    finally:
        if added:
            del scipy.signal.kaiser
    _bridge_scipy(pqmf)
    return pqmf


def _import_package() -> types.ModuleType:
    """``import rave``; where only some of its modules were imported, without its ``__init__`` (as the tests of
    published models import ``rave.blocks``), its ``__init__`` is run in that package module: its modules are
    imported once, so that gin does not see their configurables registered twice."""
    package = sys.modules.get("rave")
    if package is None:
        return importlib.import_module("rave")
    if not hasattr(package, "RAVE"):
        spec = package.__spec__
        if spec is None or spec.loader is None:
            raise ImportError("rave is in sys.modules without a spec to finish its import", name="rave")
        spec.loader.exec_module(package)
    return package


def import_rave() -> types.ModuleType:
    """The ``rave`` package of acids-rave, importable next to a current torch (see the module docstring).

    Raises:
        StreamingError: acids-rave (or one of the packages its model code needs: gin-config, cached-conv,
            einops, scipy, pytorch-lightning) is not installed, in one line with the install command.
    """
    if "rave.model" in sys.modules:
        return sys.modules["rave"]
    if importlib.util.find_spec("rave") is None:
        raise StreamingError(
            f"streamify: exporting a RAVE run needs acids-rave, which is not installed: {INSTALL_HINT}"
        )
    made = _stand_ins()
    sys.modules.update(made)
    try:
        _import_pqmf()
        rave = _import_package()
        importlib.import_module("rave.core")
        importlib.import_module("rave.dataset")  # the configs' gin imports name it
    except ImportError as error:
        for name in [n for n in sys.modules if n == "rave" or n.startswith("rave.")]:
            del sys.modules[name]  # a later try starts clean
        missing = getattr(error, "name", None) or str(error)
        raise StreamingError(
            f"streamify: acids-rave cannot be imported: it needs {missing!r}, which is not installed: {INSTALL_HINT}"
        ) from error
    finally:
        for name, module in made.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
    return rave


__all__ = ["INSTALL_HINT", "TRAINING_ONLY", "import_rave"]
