"""Training data: a folder of audio files, resampled once into a memory-mapped float32 array.

:func:`prepare` reads every file soundfile can open under a folder (recursively, sorted),
mixes it to mono, resamples it with soxr (very high quality) to the model's rate and
appends it to ``audio.f32`` (a raw float32 array, read back with ``numpy.memmap``); the
file list, offsets and rate go to ``index.json``. It runs once per folder and rate: a
second call finds the index and reuses it.

:class:`AudioWindows` serves fixed-length windows ``[1, n]`` of that array: item ``i`` is a
window drawn by a generator seeded with ``(seed, i)``, so a batch is a function of its
step (resumed runs see the same data). Files are split into training and validation sets
by :func:`split_files`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

INDEX = "index.json"
AUDIO = "audio.f32"


@dataclass
class PreparedAudio:
    """A prepared dataset: the memory-mapped samples and where each file lies in them."""

    root: Path
    sample_rate: int
    files: List[str]
    offsets: List[int]  # start sample of each file
    lengths: List[int]  # samples of each file

    @property
    def samples(self) -> np.memmap:
        """All files' samples, concatenated: ``[total]`` float32 (read-only memory map)."""
        return np.memmap(self.root / AUDIO, dtype=np.float32, mode="r")

    @property
    def seconds(self) -> float:
        return sum(self.lengths) / self.sample_rate


def audio_files(folder: Path) -> List[Path]:
    """Files under ``folder`` (recursively, sorted) whose format soundfile knows by extension."""
    import soundfile

    extensions = {f".{name.lower()}" for name in soundfile.available_formats()}
    extensions |= {".aif", ".oga", ".opus"}
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def read_mono(path: Path, sample_rate: int) -> np.ndarray:
    """``[n]`` float32 mono samples of ``path`` at ``sample_rate`` (soxr "VHQ" resampling)."""
    import soundfile
    import soxr

    audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="VHQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def prepare(data_dir: Path, cache_dir: Path, sample_rate: int) -> PreparedAudio:
    """Resample every audio file of ``data_dir`` into ``cache_dir`` once; later calls reuse it.

    Raises:
        FileNotFoundError: ``data_dir`` holds no audio file soundfile can read.
    """
    data_dir, cache_dir = Path(data_dir), Path(cache_dir)
    index_path = cache_dir / INDEX
    if index_path.exists():
        index = json.loads(index_path.read_text())
        if index["sample_rate"] == sample_rate and index["source"] == str(data_dir.resolve()):
            return PreparedAudio(cache_dir, sample_rate, index["files"], index["offsets"], index["lengths"])
    files = audio_files(data_dir)
    if not files:
        raise FileNotFoundError(f"no audio file (wav, flac, ogg, ...) under {data_dir}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    offsets, lengths, names = [], [], []
    total = 0
    partial = cache_dir / (AUDIO + ".partial")
    with open(partial, "wb") as out:
        for path in files:
            samples = read_mono(path, sample_rate)
            if samples.size == 0:
                continue
            out.write(samples.tobytes())
            names.append(str(path.relative_to(data_dir)))
            offsets.append(total)
            lengths.append(int(samples.size))
            total += int(samples.size)
    partial.replace(cache_dir / AUDIO)
    index = {
        "source": str(data_dir.resolve()),
        "sample_rate": sample_rate,
        "files": names,
        "offsets": offsets,
        "lengths": lengths,
    }
    index_path.write_text(json.dumps(index, indent=1))
    return PreparedAudio(cache_dir, sample_rate, names, offsets, lengths)


def split_files(prepared: PreparedAudio, validation_fraction: float) -> Tuple[List[int], List[int]]:
    """``(train, validation)`` file indices: every ``1 / fraction``-th file validates (at least one, if 2+ files)."""
    count = len(prepared.files)
    if count < 2 or validation_fraction <= 0:
        return list(range(count)), list(range(count))
    step = max(2, round(1 / validation_fraction))
    validation = list(range(step - 1, count, step)) or [count - 1]
    return [i for i in range(count) if i not in validation], validation


class AudioWindows(Dataset):
    """Windows ``[1, length]`` float32 of the prepared files ``files``.

    ``random=True``: item ``i`` is a window at a position drawn from ``(seed, i)`` (any file, weighted
    by length). ``random=False``: ``count`` evenly spaced windows (validation), the same every time.
    Files shorter than a window are zero-padded.
    """

    def __init__(
        self,
        prepared: PreparedAudio,
        files: Sequence[int],
        length: int,
        random: bool = True,
        count: int = 0,
        seed: int = 0,
    ) -> None:
        self.prepared = prepared
        self.files = list(files)
        self.length = int(length)
        self.random = random
        self.seed = int(seed)
        lengths = np.array([prepared.lengths[f] for f in self.files], dtype=np.float64)
        self.weights = lengths / lengths.sum()
        self.count = int(count) if count else 1 << 40
        if not random:
            self.positions = self._even_positions(self.count)
        self._samples = None

    def _even_positions(self, count: int) -> List[Tuple[int, int]]:
        """``count`` windows spread over the files in proportion to their lengths."""
        cumulative = np.cumsum([self.prepared.lengths[f] for f in self.files])
        points = (np.arange(count) + 0.5) / count * cumulative[-1]
        positions = []
        for point in points:
            k = int(np.searchsorted(cumulative, point, side="right"))
            file = self.files[k]
            start = int(point - (cumulative[k] - self.prepared.lengths[file]))
            positions.append((file, max(0, min(start, self.prepared.lengths[file] - self.length))))
        return positions

    def __len__(self) -> int:
        return self.count

    def _window(self, file: int, start: int) -> torch.Tensor:
        if self._samples is None:
            self._samples = self.prepared.samples  # opened lazily: one map per worker process
        begin = self.prepared.offsets[file] + start
        available = min(self.length, self.prepared.lengths[file] - start)
        window = np.zeros(self.length, dtype=np.float32)
        window[:available] = self._samples[begin : begin + available]
        return torch.from_numpy(window).unsqueeze(0)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not self.random:
            return self._window(*self.positions[index])
        rng = np.random.default_rng((self.seed, int(index)))
        k = int(rng.choice(len(self.files), p=self.weights))
        file = self.files[k]
        start = int(rng.integers(0, max(1, self.prepared.lengths[file] - self.length + 1)))
        return self._window(file, start)


class StepSampler(Sampler[int]):
    """Indices of the batches from step ``start()`` on: step ``s``, rank ``r`` of ``w`` reads
    ``[(s w + r) b, (s w + r + 1) b)``; so a resumed or distributed run reads what an unbroken one would.

    ``start`` and ``ranks`` (``(rank, world_size)``) are called when an iteration begins: after a
    checkpoint was restored and the processes were launched.
    """

    def __init__(
        self,
        batch_size: int,
        start: Optional[Callable[[], int]] = None,
        ranks: Optional[Callable[[], Tuple[int, int]]] = None,
        steps: int = 1 << 30,
    ) -> None:
        self.batch_size = batch_size
        self.steps = steps
        self.start = start or (lambda: 0)
        self.ranks = ranks or (lambda: (0, 1))

    def __len__(self) -> int:
        return self.steps * self.batch_size

    def __iter__(self) -> Iterator[int]:
        rank, world = self.ranks()
        for step in range(int(self.start()), self.steps):
            first = (step * world + rank) * self.batch_size
            yield from range(first, first + self.batch_size)
