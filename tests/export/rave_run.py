"""A small acids-rave training run written like ``rave train`` writes one, for the tests of ``streamify export RUN``.

acids-rave's own v2 config (``v2.gin``) with a reduced size bound through gin (4 PQMF bands, two
downsampling stages, capacity 4, 8 latent dimensions), random weights, a random orthonormal PCA and a
latent mean, and a fidelity curve that keeps 4 dimensions at 0.95 (other latent sizes: a geometric curve): ``RUN/config.gin`` (the operative
config) and ``RUN/version_0/checkpoints/last.ckpt`` (Lightning's layout, the weights under ``state_dict``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from helpers import skip_or_fail_in_ci

#: gin bindings that make acids-rave's v2 config small (fast tests); ratio 4 bands x 2 x 2 = 16 samples
SMALL_V2 = [
    "CAPACITY = 4",
    "LATENT_SIZE = 8",
    "N_BAND = 4",
    "RATIOS = [2, 2]",
    "DILATIONS = [[1, 3], [1]]",
    "SAMPLING_RATE = 48000",
]
#: cumulative explained variance of the 8 latent dimensions: 0.95 keeps 4 (3 rounded up to a power of two)
FIDELITY = [0.5, 0.8, 0.9, 0.96, 0.98, 0.99, 0.995, 1.0]


def _geometric_curve(size: int) -> torch.Tensor:
    """A cumulative explained-variance curve where each dimension explains 0.7 of the previous one's share."""
    shares = 0.7 ** torch.arange(size, dtype=torch.float64)
    return (shares.cumsum(0) / shares.sum()).float()


def rave_package():
    """acids-rave's ``rave`` package (imported by streamify's loader); skips the test where it is missing, fails
    it under CI."""
    if importlib.util.find_spec("rave") is None or importlib.util.find_spec("gin") is None:
        skip_or_fail_in_ci("acids-rave is not installed (pip install --no-deps acids-rave==2.3.1 gin-config==0.5.0)")
    from streamify.models.rave_import import import_rave

    return import_rave()


def write_run(folder: Path, config: str = "v2.gin", bindings=SMALL_V2, seed: int = 0) -> Path:
    """Build a RAVE from ``config`` and ``bindings`` and write it as a training run in ``folder``; returns it."""
    rave_package()
    import gin

    from streamify.models.rave_runs import _plain_convs

    rave = rave_package()
    gin.clear_config()
    gin.parse_config_files_and_bindings([config], list(bindings))
    torch.manual_seed(seed)
    with _plain_convs():
        model = rave.RAVE()
    generator = torch.Generator().manual_seed(seed)
    size = model.latent_size
    with torch.no_grad():
        pca, _ = torch.linalg.qr(torch.randn(size, size, generator=generator, dtype=torch.float64))
        model.latent_pca.copy_(pca.float())
        model.latent_mean.copy_(0.1 * torch.randn(size, generator=generator))
        model.fidelity.copy_(torch.tensor(FIDELITY) if size == len(FIDELITY) else _geometric_curve(size))
    checkpoints = folder / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    (folder / "config.gin").write_text(gin.operative_config_str())
    torch.save({"state_dict": model.state_dict(), "epoch": 0, "global_step": 0}, checkpoints / "last.ckpt")
    gin.clear_config()
    return folder
