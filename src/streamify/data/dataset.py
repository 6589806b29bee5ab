"""The common part of the data recipes: split rule, file writing, manifest, summary, extension.

A recipe supplies ``make(index) -> Clip``, a pure function of ``(seed, index)``. :func:`build` calls it for
``index = 0, 1, 2, ...`` until the set holds ``minutes`` of audio, writes ``train/`` or ``test/`` files
(by :func:`is_test_index`) atomically, and records each in ``manifest.jsonl``. Files already listed in the
manifest are kept untouched, so re-running with more minutes only adds files.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: one file in TEST_EVERY is held out (index % TEST_EVERY == TEST_OFFSET): about 8 % of the files
TEST_EVERY = 12
TEST_OFFSET = 5
#: bumped when a recipe changes what a given (seed, index) produces
RECIPE_VERSION = 1


class DataToolMissing(RuntimeError):
    """A program or file a data recipe needs is not installed (the message names the apt package)."""


def require_program(program: str, apt_package: str) -> str:
    """Path of ``program`` on PATH, or :class:`DataToolMissing` naming the apt package that provides it."""
    path = shutil.which(program)
    if path is None:
        raise DataToolMissing(f"'{program}' is not installed: install it with `apt-get install {apt_package}`")
    return path


def require_file(path: Path, apt_package: str, what: str) -> Path:
    """``path`` if it exists, or :class:`DataToolMissing` naming the apt package that provides it."""
    if not Path(path).is_file():
        raise DataToolMissing(f"{what} {path} not found: install it with `apt-get install {apt_package}`")
    return Path(path)


def is_test_index(index: int) -> bool:
    """Whether file ``index`` of a set is held out (test split); fixed so that extending a set keeps it."""
    return index % TEST_EVERY == TEST_OFFSET


@dataclass
class Clip:
    """One generated file before writing: mono float audio [time] in [-1, 1] and what made it."""

    audio: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    #: side files written with the clip (relative path in the set -> content), e.g. the MIDI that made it
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Summary:
    """What a set holds: per split the file count and seconds."""

    kind: str
    sample_rate: int
    seed: int
    files: dict[str, int]
    seconds: dict[str, float]
    out: str

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def warnings(self) -> list[str]:
        """What the user should know about the set: an empty test split (too few files)."""
        if self.files.get("test", 0) > 0:
            return []
        made = sum(self.files.values())
        return [
            f"the test split is empty: the set holds {made} file{'s' if made != 1 else ''} and the first held-out "
            f"file is file {TEST_OFFSET + 1} (then one in {TEST_EVERY}); make the set bigger with --minutes to get one"
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sample_rate": self.sample_rate,
            "seed": self.seed,
            "format": "wav, mono, 16-bit PCM",
            "recipe_version": RECIPE_VERSION,
            "files": self.files,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "minutes_total": round(self.total_seconds / 60.0, 3),
            "train_dir": str(Path(self.out) / "train"),
            "test_dir": str(Path(self.out) / "test"),
            "manifest": str(Path(self.out) / "manifest.jsonl"),
            "created_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "warnings": self.warnings,
        }


def normalize_peak(audio: np.ndarray, peak_db: float) -> np.ndarray:
    """``audio`` [time] scaled so that its peak is ``peak_db`` dBFS (silence is returned unchanged)."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        return audio
    return audio * (10.0 ** (peak_db / 20.0) / peak)


def trim_silence(audio: np.ndarray, sample_rate: int, threshold_db: float = -60.0, keep_s: float = 0.25) -> np.ndarray:
    """``audio`` [time] without the leading/trailing parts quieter than ``threshold_db`` below its peak,
    keeping ``keep_s`` seconds of margin on each side."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0.0:
        return audio
    loud = np.flatnonzero(np.abs(audio) > peak * 10.0 ** (threshold_db / 20.0))
    keep = int(keep_s * sample_rate)
    return audio[max(0, loud[0] - keep) : min(audio.size, loud[-1] + keep + 1)]


def _read_manifest(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _check_compatible(out: Path, kind: str, sample_rate: int, seed: int) -> None:
    summary = out / "summary.json"
    if not summary.is_file():
        return
    old = json.loads(summary.read_text())
    for key, value in (("kind", kind), ("sample_rate", sample_rate), ("seed", seed)):
        if old.get(key) != value:
            raise ValueError(
                f"{out} already holds a {old.get('kind')} set with {key}={old.get(key)!r} (asked {value!r}): "
                "use another folder, or the same settings to extend it"
            )


def _generate(make: Callable[[int], Clip], start: int, jobs: int) -> Iterator[tuple[int, Clip]]:
    """``(index, make(index))`` for index = start, start+1, ... in order, ``jobs`` computed at a time."""
    if jobs <= 1:
        index = start
        while True:
            yield index, make(index)
            index += 1
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        index = start
        pending = [pool.submit(make, start + k) for k in range(jobs)]
        while True:
            clip = pending.pop(0).result()
            pending.append(pool.submit(make, index + jobs))
            yield index, clip
            index += 1


class DataPathError(ValueError):
    """The set's folder cannot be made or written (the message names the path and what to do)."""


def make_folders(out: Path) -> None:
    """Create ``out/train`` and ``out/test``; :class:`DataPathError` naming the path when that cannot be done."""
    if out.exists() and not out.is_dir():
        raise DataPathError(f"{out} is a file, not a folder: give a new folder (or an existing set) for the set")
    for split in ("train", "test"):
        try:
            (out / split).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise DataPathError(
                f"cannot create the folder {out / split} ({reason}): give a folder in a writable place"
            ) from error
    if not os.access(out / "train", os.W_OK) or not os.access(out / "test", os.W_OK):
        raise DataPathError(f"the folder {out} is not writable: give a folder in a writable place")


def build(
    out: Path,
    kind: str,
    make: Callable[[int], Clip],
    *,
    minutes: float,
    seed: int,
    sample_rate: int,
    jobs: int = 1,
    on_file: Callable[[float, float], None] | None = None,
) -> Summary:
    """Generate the set ``out`` (``kind`` names it and its files) until it holds ``minutes`` of audio.

    ``make(index)`` must depend only on the recipe's seed and ``index`` and return audio at ``sample_rate``.
    Existing files of the manifest are kept; ``on_file(seconds_done, seconds_wanted)`` reports progress.
    """
    import soundfile

    out = Path(out)
    make_folders(out)
    _check_compatible(out, kind, sample_rate, seed)
    manifest_path = out / "manifest.jsonl"
    entries = [e for e in _read_manifest(manifest_path) if (out / e["path"]).is_file()]
    entries.sort(key=lambda e: e["index"])
    if [e["index"] for e in entries] != list(range(len(entries))):
        raise ValueError(f"{manifest_path} does not list files 0..{len(entries) - 1} in order: rebuild {out}")
    wanted = minutes * 60.0
    done = sum(e["seconds"] for e in entries)
    with manifest_path.open("w", encoding="utf-8") as manifest:
        for entry in entries:
            manifest.write(json.dumps(entry, ensure_ascii=False) + "\n")
        manifest.flush()
        if done < wanted:
            for index, clip in _generate(make, len(entries), jobs):
                split = "test" if is_test_index(index) else "train"
                rel = f"{split}/{kind}_{index:05d}.wav"
                tmp = out / split / f".{kind}_{index:05d}.tmp.wav"
                soundfile.write(tmp, np.clip(clip.audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
                os.replace(tmp, out / rel)
                for name, content in clip.files.items():
                    (out / name).parent.mkdir(parents=True, exist_ok=True)
                    (out / name).write_bytes(content)
                seconds = clip.audio.size / sample_rate
                entry = {"index": index, "path": rel, "split": split, "seconds": round(seconds, 4), **clip.meta}
                entries.append(entry)
                manifest.write(json.dumps(entry, ensure_ascii=False) + "\n")
                manifest.flush()
                done += seconds
                if on_file is not None:
                    on_file(done, wanted)
                if done >= wanted:
                    break
    summary = Summary(
        kind=kind,
        sample_rate=sample_rate,
        seed=seed,
        files={s: sum(e["split"] == s for e in entries) for s in ("train", "test")},
        seconds={s: sum(e["seconds"] for e in entries if e["split"] == s) for s in ("train", "test")},
        out=str(out),
    )
    (out / "summary.json").write_text(json.dumps(summary.to_json(), indent=2) + "\n")
    return summary
