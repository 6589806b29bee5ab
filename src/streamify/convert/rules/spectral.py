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
from streamify.layers.istft import ISTFT
from streamify.layers.stft import STFT

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
def fft(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    arg, info = time_args[0]
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
def complex_view(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """[..., 2] real pairs <-> complex: the time axis keeps its index (it is never the pairs' axis)."""
    arg, info = time_args[0]
    if info.dim == rw.values[arg].dim() - 1 and node.target.overloadpacket is aten.view_as_complex:
        raise rw.fail(node, "pairs time frames into complex numbers", "pair channels instead")
    rw.env[node], rw.info[node] = rw.copy(node), info


@op_rule(aten.real, aten.imag, aten.complex, aten.polar)
def complex_parts(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    from streamify.convert.rules.combine import pointwise

    pointwise(rw, node, time_args)


@op_rule(aten.stft)
def stft(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """``aten.stft`` (torch pads a centered STFT in Python before it: that pad has its own rule):
    :class:`~streamify.layers.STFT` with ``center=False``; complex frames, time last."""
    arg, info = time_args[0]
    x = rw.values[arg]
    if arg is not node.args[0] or info.dim != x.dim() - 1:
        raise rw.fail(node, "takes an STFT whose signal is not on the last axis", "give torch.stft [batch, time]")
    get = lambda i, name, default=None: rw.static(node, i, name, default)  # noqa: E731
    if not get(7, "return_complex", False):
        raise rw.fail(node, "takes an STFT with return_complex=False", "use return_complex=True")
    layer = _build(
        rw,
        node,
        lambda: STFT(
            get(1, "n_fft"),
            get(2, "hop_length"),
            get(3, "win_length"),
            get(4, "window"),
            center=False,
            normalized=bool(get(5, "normalized", False)),
            onesided=get(6, "onesided", True) is not False,
        ),
    )
    y, out = rw.emit_stream(layer, rw.env[arg], info, x.dim())
    rw.env[node], rw.info[node] = y, out.moved(rw.values[node].dim() - 1)


@op_rule(aten.istft)
def istft(rw: Rewriter, node: fx.Node, time_args: Pairs) -> None:
    """``aten.istft``: :class:`~streamify.layers.ISTFT` (``length`` only cuts or pads the end: ignored)."""
    arg, info = time_args[0]
    spec = rw.values[arg]
    if arg is not node.args[0] or info.dim != spec.dim() - 1:
        raise rw.fail(
            node, "inverts an STFT whose frames are not on the last axis", "give torch.istft [batch, freqs, frames]"
        )
    get = lambda i, name, default=None: rw.static(node, i, name, default)  # noqa: E731
    if get(9, "return_complex", False):
        raise rw.fail(node, "inverts an STFT with return_complex=True", "use return_complex=False")
    layer = _build(
        rw,
        node,
        lambda: ISTFT(
            get(1, "n_fft"),
            get(2, "hop_length"),
            get(3, "win_length"),
            get(4, "window"),
            center=bool(get(5, "center", True)),
            normalized=bool(get(6, "normalized", False)),
            onesided=get(7, "onesided", True) is not False,
        ),
    )
    y, out = rw.emit_stream(layer, rw.env[arg], info, spec.dim())
    rw.env[node], rw.info[node] = y, out.moved(rw.values[node].dim() - 1)


def _build(rw: Rewriter, node: fx.Node, make):
    from streamify.convert.rules.windows import _build as build

    return build(rw, node, make)
