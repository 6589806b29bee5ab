"""Spectral ops: FFTs on any axis, STFT and ISTFT.

An FFT over an axis other than time (``torch.fft.rfft(x, dim=1)``, an inverse FFT over the frequencies of
each frame) acts frame by frame: kept. An FFT over the time axis reads the whole signal: refused, saying so.
``torch.stft`` / ``torch.istft`` over the signal frame and overlap-add time: refused until their streaming
layers exist, naming them.
"""

from __future__ import annotations

import torch
import torch.fx as fx

from streamify.convert.rewrite import Pairs, Rewriter, norm_dim
from streamify.convert.rules import op_rule

aten = torch.ops.aten


@op_rule(
    aten.fft_fft,
    aten.fft_ifft,
    aten.fft_rfft,
    aten.fft_irfft,
    aten.fft_hfft,
    aten.fft_ihfft,
    aten._fft_r2c,
    aten._fft_c2r,
    aten._fft_c2c,
    aten.fft_fftn,
    aten.fft_ifftn,
    aten.fft_rfftn,
    aten.fft_irfftn,
    aten.fft_fft2,
    aten.fft_rfft2,
    aten.fft_irfft2,
)
def fft(rw: Rewriter, node: fx.Node, tins: Pairs) -> None:
    arg, info = tins[0]
    ndim = rw.values[arg].dim()
    name = node.target.overloadpacket.__name__
    if name.startswith("_fft"):
        dims = rw.static(node, 1, "dim")
    elif name.endswith("n") or name.endswith("2"):
        dims = rw.static(node, 2, "dim", None)
        dims = list(range(ndim)) if dims is None else dims
    else:
        dims = [rw.static(node, 2, "dim", -1)]
    if info.dim in [norm_dim(d, ndim) for d in dims]:
        raise rw.fail(
            node,
            f"takes an FFT over the time axis ({name}), which reads the whole signal",
            "take FFTs over frames (frame the signal first) or over channels",
        )
    rw.env[node], rw.info[node] = rw.copy(node), info


@op_rule(aten.view_as_real, aten.view_as_complex)
def complex_view(rw: Rewriter, node: fx.Node, tins: Pairs) -> None:
    """[..., 2] real pairs <-> complex: the time axis keeps its index (it is never the pairs' axis)."""
    arg, info = tins[0]
    if info.dim == rw.values[arg].dim() - 1 and node.target.overloadpacket is aten.view_as_complex:
        raise rw.fail(node, "pairs time frames into complex numbers", "pair channels instead")
    rw.env[node], rw.info[node] = rw.copy(node), info


@op_rule(aten.real, aten.imag, aten.complex, aten.polar)
def complex_parts(rw: Rewriter, node: fx.Node, tins: Pairs) -> None:
    from streamify.convert.rules.combine import pointwise

    pointwise(rw, node, tins)


@op_rule(aten.stft)
def stft(rw: Rewriter, node: fx.Node, tins: Pairs) -> None:
    raise rw.fail(
        node,
        "frames the signal for an STFT (torch.stft); it has no streaming layer yet",
        "compute the STFT with a strided conv over windowed Fourier kernels",
    )


@op_rule(aten.istft)
def istft(rw: Rewriter, node: fx.Node, tins: Pairs) -> None:
    raise rw.fail(
        node,
        "overlap-adds frames of an inverse STFT (torch.istft); it has no streaming layer yet",
        "invert with nn.ConvTranspose1d over windowed Fourier kernels",
    )
