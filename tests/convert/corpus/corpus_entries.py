"""The corpus: published audio models that no other test converts, each with the verdict it deserves.

Every entry builds one configuration of a published package with random weights (seeded, float64,
small so that the corpus runs fast) and says what a correct converter must do with it:

* ``streams``: the model can stream exactly (its output at each frame depends on a bounded window of
  input, through ops with a streaming rule): conversion must succeed and stream exactly.
* ``refused: <cause>``: it cannot stream as it is, for that cause (attention over time, a norm over
  time, a bidirectional recurrence, pooling over the whole signal): conversion must be refused, and the
  message must name the cause (``match``, a regular expression).

``known`` says what today's converter does where it falls short of the verdict ("issue 20: ..."): the
suite marks such entries ``xfail(strict=True)``, so that they flip to a failure the day the converter
gets them right (then the mark goes). ``tests/convert/corpus/test_corpus.py`` checks every entry;
``benchmarks/corpus.py`` counts the outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List

from corpus_models import (
    ChannelsLast,
    FramesLast,
    MultiBandMelGAN,
    PQMFAnalysis,
    Select,
    UnivNet,
    Unmix,
    UnmixSpectrogram,
    WaveNetVocoder,
    convtasnet,
    dac,
    dprnn,
    dsptk,
    fb,
    melgan,
    mimi,
    nnaudio,
    pwg_hifigan,
    sb_ecapa,
    sb_hifigan,
    sb_xvector,
    seeded,
    speecht5_hifigan,
    tcn,
    tdconvnet,
    vq,
    wav2vec2_features,
)
from torch import nn

STREAMS = "streams"


@dataclass(frozen=True)
class Entry:
    """One configuration of a published model and the verdict it deserves."""

    name: str  # "<pip distribution>/<configuration>"
    build: Callable[[], nn.Module]  # the model, float64, eval, random weights: [batch, channels, time] in and out
    channels: int  # input channels
    frames: int  # length of the conversion example (input frames)
    verdict: str  # STREAMS, or "refused: <true cause>"
    match: str = ""  # for a refusal: a regular expression the message must match (the cause)
    known: str = ""  # today's converter falls short of the verdict: why ("issue 20: ..."); empty where it does not
    reflect: bool = False  # pads by reflection: a stream differs from offline in its warm-up only

    @property
    def package(self) -> str:
        return self.name.split("/")[0]

    @property
    def streams(self) -> bool:
        return self.verdict == STREAMS


# ------------------------------------------------------------------------------------------------------ the list

# what a refusal must say (prose of the cause, never a module path or class name that happens to contain the word)
ATTENTION = r"attention (over|across|reads)|attends (over|to)|softmax over (the )?time"
NORM_OVER_TIME = r"normali[sz]\w* over (the )?time"
POOLING = r"(reduces|pools?|pooling|averages)\b[^;]* over (the )?(whole )?(time|signal)"
BIDIRECTIONAL = r"bidirectional (LSTM|GRU|RNN|recurren)|(reverse|backward) direction"

ENTRIES: List[Entry] = [
    # parallel-wavegan: vocoders
    Entry("parallel-wavegan/MelGAN", seeded(melgan), 8, 64, STREAMS, reflect=True),
    Entry("parallel-wavegan/MelGAN-causal", seeded(lambda: melgan(causal=True)), 8, 64, STREAMS, reflect=True),
    Entry("parallel-wavegan/HiFiGAN", seeded(pwg_hifigan), 8, 64, STREAMS),
    Entry("parallel-wavegan/MultiBandMelGAN", seeded(MultiBandMelGAN), 8, 64, STREAMS, reflect=True),
    Entry("parallel-wavegan/PQMF-analysis", seeded(PQMFAnalysis), 1, 256, STREAMS),
    Entry(
        "parallel-wavegan/ParallelWaveGAN",
        seeded(WaveNetVocoder),
        5,
        128,
        STREAMS,
        known="issue 20 pattern 1: an in-place ReLU (inplace=True) on a conv's output",
    ),
    # asteroid-filterbanks: learnable and fixed filterbanks
    Entry("asteroid-filterbanks/FreeFB-encoder", seeded(lambda: fb(True, "FreeFB", 16, 16, 8)), 1, 256, STREAMS),
    Entry(
        "asteroid-filterbanks/ParamSincFB-encoder",
        seeded(lambda: fb(True, "ParamSincFB", 16, 33, 8)),
        1,
        256,
        STREAMS,
    ),
    Entry("asteroid-filterbanks/STFTFB-decoder", seeded(lambda: fb(False, "STFTFB", 16, 16, 8)), 18, 64, STREAMS),
    Entry(
        "asteroid-filterbanks/AnalyticFreeFB-encoder",
        seeded(lambda: fb(True, "AnalyticFreeFB", 16, 16, 8)),
        1,
        256,
        STREAMS,
    ),
    # asteroid: separators
    Entry("asteroid/TDConvNet-cLN", seeded(lambda: tdconvnet("cLN")), 16, 64, STREAMS),
    Entry(
        "asteroid/TDConvNet-gLN",
        seeded(lambda: tdconvnet("gLN")),
        16,
        64,
        "refused: global layer norm over time",
        NORM_OVER_TIME,
    ),
    Entry(
        "asteroid/DPRNN",
        seeded(dprnn),
        16,
        64,
        "refused: bidirectional LSTM across chunks",
        BIDIRECTIONAL,
        known="issue 20: the message names F.unfold (streamable), not the bidirectional LSTM across chunks",
    ),
    Entry("asteroid/ConvTasNet-cLN", seeded(convtasnet), 1, 256, STREAMS),
    # nnAudio: spectral front ends
    Entry(
        "nnaudio/STFT",
        seeded(lambda: nnaudio("STFT", n_fft=64, hop_length=16, output_format="Magnitude")),
        1,
        512,
        STREAMS,
        reflect=True,
        known="issue 20 pattern 3: a padding module built inside forward",
    ),
    Entry(
        "nnaudio/MelSpectrogram",
        seeded(lambda: nnaudio("MelSpectrogram", sr=8000, n_fft=64, n_mels=8, hop_length=16)),
        1,
        512,
        STREAMS,
        reflect=True,
        known="issue 20 pattern 3: a padding module built inside forward",
    ),
    Entry(
        "nnaudio/MFCC",
        seeded(lambda: nnaudio("MFCC", sr=8000, n_mfcc=8, n_fft=64, n_mels=16, hop_length=16)),
        1,
        512,
        STREAMS,
        reflect=True,
        known="issue 20 pattern 3: a padding module built inside forward",
    ),
    Entry(
        "nnaudio/CQT1992v2",
        seeded(lambda: nnaudio("CQT1992v2", sr=8000, hop_length=16, fmin=500, n_bins=12, output_format="Magnitude")),
        1,
        1024,
        STREAMS,
        reflect=True,
        known="issue 20 pattern 3: a padding module built inside forward",
    ),
    # pytorch-tcn: temporal convolutional networks
    Entry(
        "pytorch-tcn/TCN-causal",
        seeded(tcn),
        4,
        64,
        STREAMS,
        known="issue 20 pattern 2: parametrized weight norm on a Conv1d subclass with its own forward",
    ),
    Entry(
        "pytorch-tcn/TCN-noncausal",
        seeded(lambda: tcn(causal=False)),
        4,
        64,
        STREAMS,
        known="issue 20 pattern 2: parametrized weight norm on a Conv1d subclass with its own forward",
    ),
    Entry(
        "pytorch-tcn/TCN-layernorm-skip-gate",
        seeded(lambda: tcn(use_norm="layer_norm", use_skip_connections=True, use_gate=True)),
        4,
        64,
        STREAMS,
    ),
    # openunmix: music separation
    Entry(
        "openunmix/OpenUnmix-unidirectional",
        seeded(lambda: Unmix(True)),
        16,
        64,
        STREAMS,
        known="issue 20 pattern 7: time folded into the batch (reshape) around per-frame linears",
    ),
    Entry(
        "openunmix/OpenUnmix-bidirectional",
        seeded(lambda: Unmix(False)),
        16,
        64,
        "refused: bidirectional LSTM",
        BIDIRECTIONAL,
        known="issue 20: the message names the reshape (streamable), not the bidirectional LSTM",
    ),
    Entry(
        "openunmix/TorchSTFT-magnitude",
        seeded(UnmixSpectrogram),
        1,
        256,
        STREAMS,
        known="issue 20 pattern 7: torch.stft",
    ),
    # diffsptk: speech signal processing
    Entry("diffsptk/PQMF", seeded(lambda: dsptk("PQMF", 4, 31)), 1, 256, STREAMS),
    Entry("diffsptk/IPQMF", seeded(lambda: dsptk("IPQMF", 4, 31)), 4, 256, STREAMS),
    Entry(
        "diffsptk/STFT",
        seeded(lambda: FramesLast(dsptk("STFT", 32, 8, 32))),
        1,
        256,
        STREAMS,
        known="issue 20 pattern 7: Tensor.unfold framing and an FFT within each frame",
    ),
    Entry(
        "diffsptk/Decimation",
        seeded(lambda: dsptk("Decimation", 4)),
        1,
        256,
        STREAMS,
        known="issue 20 pattern 9: a strided slice built as a tuple of slices",
    ),
    # vector-quantize-pytorch: codec bottlenecks
    Entry(
        "vector-quantize-pytorch/VectorQuantize",
        seeded(lambda: Select(vq("VectorQuantize", dim=8, codebook_size=16, channel_last=False))),
        8,
        64,
        STREAMS,
        known="issue 20 pattern 7: einops pack folds time into the batch around a per-frame lookup",
    ),
    Entry(
        "vector-quantize-pytorch/ResidualVQ",
        seeded(lambda: ChannelsLast(vq("ResidualVQ", dim=8, num_quantizers=2, codebook_size=16))),
        8,
        64,
        STREAMS,
        known="issue 20 pattern 7: einops pack folds time into the batch around a per-frame lookup",
    ),
    Entry(
        "vector-quantize-pytorch/FSQ",
        seeded(lambda: ChannelsLast(vq("FSQ", levels=[5, 5, 5], dim=8))),
        8,
        64,
        STREAMS,
    ),
    # speechbrain
    Entry("speechbrain/HifiganGenerator", seeded(sb_hifigan), 8, 64, STREAMS, reflect=True),
    Entry(
        "speechbrain/ECAPA-TDNN",
        seeded(sb_ecapa),
        8,
        64,
        "refused: attentive statistics pooling over the whole signal",
        POOLING,
        known="issue 20 pattern 9: the message names len() of torch.chunk, not the pooling over time",
    ),
    Entry(
        "speechbrain/Xvector",
        seeded(sb_xvector),
        8,
        64,
        "refused: statistics pooling over the whole signal",
        POOLING,
        known="issue 20 pattern 9: the message names a Python condition on x.ndim, not the pooling over time",
    ),
    # transformers
    Entry("transformers/SpeechT5HifiGan", seeded(speecht5_hifigan), 8, 64, STREAMS),
    Entry(
        "transformers/UnivNet",
        seeded(UnivNet),
        16,
        64,
        STREAMS,
        known="issue 20 pattern 9: Python control flow on the batch size, read through fx proxies",
    ),
    Entry("transformers/Dac-encoder", seeded(lambda: dac("encoder")), 1, 256, STREAMS),
    Entry("transformers/Dac-decoder", seeded(lambda: dac("decoder")), 16, 64, STREAMS),
    Entry("transformers/Mimi-encoder", seeded(lambda: mimi("encoder")), 1, 256, STREAMS),
    Entry(
        "transformers/Mimi-transformer",
        seeded(lambda: mimi("transformer")),
        16,
        64,
        "refused: attention over time",
        ATTENTION,
        known="issue 20: the message names the rotary embedding's table, not the attention over time",
    ),
    Entry("transformers/Wav2Vec2-features-layer", seeded(lambda: wav2vec2_features("layer")), 1, 400, STREAMS),
    Entry(
        "transformers/Wav2Vec2-features-group",
        seeded(lambda: wav2vec2_features("group")),
        1,
        400,
        "refused: GroupNorm over time",
        NORM_OVER_TIME,
    ),
]
