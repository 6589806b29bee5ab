"""nn~ files in the real nn~ external, in PureData: load, CPU per second of audio, memory, exactness.

Runs each ``.ts`` file in ``pd -batch`` (PureData 0.53+, the nn~ external built from source: see
docs/nn_tilde_build.md) on a seeded test signal written to a float32 WAV file, files alternated
(A B A B), one intra-op thread (``OMP_NUM_THREADS=1``), and prints per run:

* **start -> loaded**: wall time from starting Pd to the model loaded (Pd started, the nn~ library
  and libtorch loaded by ``-lib nn~``, the patch opened, the model created), seen by this script on
  Pd's console;
* **load**: what creating the nn~ object took on Pd's scheduler thread, which also computes the audio
  (``[realtime]`` / ``[cputime]`` around the creation; the library is already loaded): the time the
  audio would stop, wall and CPU;
* **calls 1, 2**: the wall time Pd spent on the first two buffers' computation (batch mode waits for
  nn~'s thread when a buffer is due), against the buffer's duration;
* **steady**: process CPU seconds per second of audio after the first three buffers;
* **peak**: Pd's peak resident memory (VmHWM of the process, read every 20 ms);
* **exactness**: Pd's output against the same file streamed in Python (``torch.jit.load``,
  ``get_methods()``, the method called on consecutive buffers of the same size, zero-padded at the
  end), at nn~'s latency ``2B - 64`` (B the buffer, Pd's blocks of 64); bit-exact is expected.

With ``--chain`` each file also runs ``[nn~ f encode] -> [nn~ f decode]`` (latent signals wired one to
one) and its output is compared with the Python stream of ``forward``: the lag that fits, the largest
error relative to the peak, and what the chain plays before the signal arrives.

    export NN_TILDE_DIR=<nn_tilde build>/frontend/puredata/nn_tilde   # holds nn~.pd_linux
    python benchmarks/nn_tilde_pd.py --export v2 --out build/nn_pd --chain      # the v2 preset of the package
    python benchmarks/nn_tilde_pd.py a.ts b.ts --chain --seconds 30 --json results.json

Timings are this machine's at the time: compare files within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(Path(__file__).resolve().parent)]

from harness.pd_patch import write_patch  # noqa: E402

SR = 48000
BLOCK = 64


def search_limit(buffer: int) -> int:
    """Lags searched when a run is not exact at the expected one: nn~'s latency twice, plus 4 latent frames of 2048."""
    return 2 * (2 * buffer - BLOCK) + 4 * 2048


def test_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """Seeded mono test signal, float32 in [-0.5, 0.5]: gliding partials, amplitude swells, a little noise.

    Shape: ``[samples]``.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    signal = np.zeros_like(t)
    for f0 in rng.uniform(80, 900, size=5):
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.3 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t))) / SR
        signal += np.sin(phase) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 1.0) * t + rng.uniform(0, 6)))
    signal = signal / np.abs(signal).max() * 0.45 + rng.standard_normal(t.size) * 0.01
    return signal.astype(np.float32)


def read_signal(path: Path) -> np.ndarray:
    """Channel 0 of a sound file, float32 (played as it is: Pd runs at 48 kHz). Shape: ``[samples]``."""
    import soundfile

    return soundfile.read(path, dtype="float32", always_2d=True)[0][:, 0]


def method_params(path: Path, methods: List[str]) -> Dict[str, List[int]]:
    """``[in_channels, in_ratio, out_channels, out_ratio]`` of each method, as nn~ reads them."""
    import torch

    module = torch.jit.load(str(path))
    return {m: [int(v) for v in getattr(module, f"{m}_params")] for m in methods if hasattr(module, f"{m}_params")}


def python_stream(path: Path, method: str, signal: np.ndarray, buffer: int) -> np.ndarray:
    """``method`` of the file fed consecutive ``buffer``-sample buffers as nn~ feeds it (fresh load).

    Shape: ``[samples]`` in, ``[samples rounded up to buffers]`` out (channel 0).
    """
    import torch

    torch.set_num_threads(1)
    module = torch.jit.load(str(path))
    if hasattr(module, "get_methods"):
        module.get_methods()
    padded = np.zeros(-(-signal.size // buffer) * buffer, dtype=np.float32)
    padded[: signal.size] = signal
    call = getattr(module, method)
    with torch.inference_mode():
        outs = [
            call(torch.from_numpy(padded[i : i + buffer]).view(1, 1, -1))[0, 0] for i in range(0, padded.size, buffer)
        ]
    return torch.cat(outs).numpy()


def offline_forward(path: Path, signal: np.ndarray, multiple: int = 2048) -> np.ndarray:
    """``forward`` of an offline file (e.g. ``rave export`` without ``--streaming``) on the whole signal, one call.

    The signal is zero-padded to a whole number of ``multiple`` samples. Shape: ``[samples]`` -> ``[padded]``.
    """
    import torch

    torch.set_num_threads(1)
    padded = np.zeros(-(-signal.size // multiple) * multiple, dtype=np.float32)
    padded[: signal.size] = signal
    with torch.inference_mode():
        return torch.jit.load(str(path)).forward(torch.from_numpy(padded).view(1, 1, -1))[0, 0].numpy()


def stated_delay(path: Path, method: str = "forward") -> Optional[int]:
    """The delay a streamify file states for ``method`` (samples); None for other files."""
    from streamify import StreamingError
    from streamify.export import read_info

    try:
        return int(read_info(path)["methods"][method]["delay_samples"])
    except (StreamingError, KeyError):
        return None


class PdRun:
    """One Pd process on a generated patch: its console lines (with arrival times), rusage, output."""

    def __init__(self, pd: str, nn_dir: Path, folder: Path, patch: str, timeout: float, nrt: bool = False) -> None:
        (folder / "run.pd").write_text(patch)
        command = [
            pd,
            "-nogui",
            "-noaudio",
            "-batch",
            "-r",
            str(SR),
            "-path",
            str(nn_dir),
            "-lib",
            "nn~",
            "-open",
            "run.pd",
        ]
        command[1:1] = ["-nrt"] if nrt else []
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.lines: List[tuple] = []
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        reader = threading.Thread(target=self._read, args=(process.stdout, start), daemon=True)
        reader.start()
        self.peak_kb = 0
        watcher = threading.Thread(target=self._watch, args=(process.pid,), daemon=True)
        watcher.start()
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        timer.cancel()
        reader.join()
        watcher.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        self.wall_s = time.perf_counter() - start
        self.peak_mb = self.peak_kb / 1024
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.log = "".join(line for _, line in self.lines)
        self.status = process.returncode
        if not (folder / "out.wav").exists() or "mark2_cpu_ms" not in self.log:
            raise RuntimeError(f"Pd failed (status {process.returncode}); its console:\n{self.log}")
        if process.returncode != 0:  # after the run and its output file: reported, not fatal
            print(f"    (Pd exited with status {process.returncode} after writing its output)", flush=True)
        import soundfile

        self.output = soundfile.read(folder / "out.wav", dtype="float32")[0]

    def _watch(self, pid: int) -> None:
        """Pd's peak resident memory (VmHWM), read every 20 ms until it exits.

        Not ``ru_maxrss``: a child's starts at the RSS of the process that forked it (this one, with torch).
        """
        status = Path(f"/proc/{pid}/status")
        while True:
            try:
                text = status.read_text()
            except OSError:
                return
            if "VmHWM" not in text:  # exited, not yet reaped
                return
            self.peak_kb = max(self.peak_kb, int(re.search(r"^VmHWM:\s+(\d+)", text, re.M).group(1)))
            time.sleep(0.02)

    def _read(self, stream, start: float) -> None:
        for line in stream:
            self.lines.append((time.perf_counter() - start, line))

    def value(self, name: str) -> float:
        found = re.search(rf"^{name}: ([-\d.e+]+)", self.log, re.M)
        if not found:
            raise RuntimeError(f"Pd did not print {name}; its console:\n{self.log}")
        return float(found.group(1))

    def seen_at(self, name: str) -> float:
        """Seconds from starting Pd to the arrival of the line ``name: ...``."""
        return next(t for t, line in self.lines if line.startswith(f"{name}:"))


def run_patch(args, model: Path, methods: List[str], widths: List[int], signal: np.ndarray) -> PdRun:
    """Run ``signal`` through the chain ``methods`` of ``model`` in Pd; marks after calls 1, 2 and at the end."""
    import soundfile

    b = args.buffer
    marks = [(2 * b + BLOCK) / SR * 1000, (3 * b + BLOCK) / SR * 1000, signal.size / SR * 1000]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        soundfile.write(folder / "in.wav", signal, SR, subtype="FLOAT")
        (folder / "model.ts").symlink_to(model.resolve())
        patch = write_patch("model.ts", methods, widths, b, signal.size, marks)
        return PdRun(args.pd, args.nn_dir, folder, patch, args.timeout, getattr(args, "nrt", False))


def timing(run: PdRun, seconds: float, buffer: int) -> Dict[str, float]:
    """The run's load, first calls and steady cost, from the timers Pd printed."""
    first = (3 * buffer + BLOCK) / SR
    return {
        "start_to_loaded_s": run.seen_at("load_wall_ms"),
        "load_wall_s": run.value("load_wall_ms") / 1000,
        "load_cpu_s": run.value("load_cpu_ms") / 1000,
        "call1_wall_ms": run.value("mark0_wall_ms"),
        "call2_wall_ms": run.value("mark1_wall_ms") - run.value("mark0_wall_ms"),
        "steady_cpu_per_audio_s": (run.value("mark2_cpu_ms") - run.value("mark1_cpu_ms")) / 1000 / (seconds - first),
        "steady_wall_per_audio_s": (run.value("mark2_wall_ms") - run.value("mark1_wall_ms")) / 1000 / (seconds - first),
        "process_cpu_s": run.cpu_s,
        "process_wall_s": run.wall_s,
        "peak_rss_mb": run.peak_mb,
        "pd_exit_status": run.status,
    }


def compare_at(out: np.ndarray, ref: np.ndarray, lag: int) -> Dict[str, float]:
    """``out[n]`` against ``ref[n - lag]`` where both exist: largest difference, and relative to ``ref``'s peak."""
    n = min(out.size - lag, ref.size)
    diff = np.abs(out[lag : lag + n].astype(np.float64) - ref[:n])
    peak = float(np.abs(ref[:n]).max()) or 1.0
    return {"lag": lag, "max_abs": float(diff.max()), "max_rel": float(diff.max()) / peak, "compared": int(n)}


def best_lag(out: np.ndarray, ref: np.ndarray, limit: int, points: int = 4096) -> int:
    """The lag in [0, limit] at which ``out[n]`` follows ``ref[n - lag]`` best over the second half of ``out``.

    Judged by the largest error on the same ``points`` positions (seeded) for every lag; the second
    half, so that a start that differs (a chain's first frames) does not hide the lag that fits after it.
    """
    first = max(limit, out.size // 2)
    if first >= out.size:
        raise ValueError(f"the output ({out.size} samples) is shorter than the lags searched ({limit})")
    n = first + np.sort(
        np.random.default_rng(0).choice(out.size - first, size=min(points, out.size - first), replace=False)
    )
    n = n[n - limit < ref.size]
    errors = [np.abs(out[n] - ref[n - lag]).max() for lag in range(limit + 1)]
    return int(np.argmin(errors))


def forward_exactness(run: PdRun, ref: np.ndarray, buffer: int) -> Dict[str, float]:
    """Pd's ``forward`` output against the Python stream at nn~'s latency ``2B - 64`` (and the best lag if not exact)."""
    found = compare_at(run.output, ref, 2 * buffer - BLOCK)
    if found["max_abs"] != 0.0:
        found["best"] = compare_at(run.output, ref, best_lag(run.output, ref, search_limit(buffer)))
    return found


def chain_exactness(run: PdRun, ref: np.ndarray, buffer: int, tol: float = 1e-5) -> Dict[str, float]:
    """The ``encode -> decode`` chain against the Python stream of ``forward``, at the lag that fits best.

    ``before_*``: what the chain plays before the signal reaches it (the stream's first non-silent
    sample, moved by the lag): exactly 0 when the chain starts at the signal. ``settle_samples``: from
    there, the samples until the error stays within ``tol`` of the peak; ``max_rel_after``: the largest
    error after them.
    """
    out = run.output
    found = compare_at(out, ref, best_lag(out, ref, search_limit(buffer)))
    lag, peak = found["lag"], float(np.abs(ref).max()) or 1.0
    onset = lag + int(np.flatnonzero(ref)[0]) if np.any(ref) else out.size
    head = out[:onset].astype(np.float64)
    found["before_samples"] = onset
    found["before_rms"] = float(np.sqrt(np.mean(head**2))) if head.size else 0.0
    found["before_max"] = float(np.abs(head).max()) if head.size else 0.0
    n = min(out.size - onset, ref.size - (onset - lag))
    diff = np.abs(out[onset : onset + n].astype(np.float64) - ref[onset - lag : onset - lag + n]) / peak
    over = np.flatnonzero(diff > tol)
    found["settle_samples"] = int(over[-1]) + 1 if over.size else 0
    found["max_rel_after"] = float(diff[found["settle_samples"] :].max()) if found["settle_samples"] < n else None
    return found


def offline_exactness(run: PdRun, offline: np.ndarray, path: Path, buffer: int) -> Dict[str, object]:
    """Pd's ``forward`` output against an offline file's output: at the stated delay plus nn~'s, and the best lag."""
    found: Dict[str, object] = {}
    delay = stated_delay(path)
    if delay is not None:
        found["stated"] = compare_at(run.output, offline, 2 * buffer - BLOCK + delay)
    found["best"] = compare_at(run.output, offline, best_lag(run.output, offline, SR * 3 // 2, points=1024))
    return found


def describe(name: str, t: Dict[str, float], buffer: int) -> str:
    budget = buffer / SR * 1000
    return (
        f"{name}: start->loaded {t['start_to_loaded_s']:.2f} s | load (audio thread blocked) "
        f"{t['load_wall_s']:.2f} s wall, {t['load_cpu_s']:.2f} s CPU | calls 1, 2: {t['call1_wall_ms']:.0f}, "
        f"{t['call2_wall_ms']:.0f} ms wall (budget {budget:.1f}) | steady {t['steady_cpu_per_audio_s']:.3f} CPU s "
        f"per s of audio ({t['steady_wall_per_audio_s']:.3f} wall) | peak RSS {t['peak_rss_mb']:.0f} MB"
    )


def describe_exact(found: Dict[str, float], chain: bool) -> str:
    if chain:
        return (
            f"    encode->decode vs Python forward stream: lag {found['lag']}, max error {found['max_rel']:.2e} of the "
            f"peak; before the signal ({found['before_samples']} samples): rms {found['before_rms']:.3g}, max "
            f"{found['before_max']:.3g}; from the signal, off by more than 1e-5 of the peak for "
            f"{found['settle_samples']} samples, then within {found['max_rel_after']:.1e}"
        )
    text = f"    vs Python stream at lag {found['lag']} (2B-64): max |diff| {found['max_abs']:.3g} over {found['compared']} samples"
    if found["max_abs"] == 0.0:
        return text + " (bit-exact)"
    best = found["best"]
    return text + f" ({found['max_rel']:.2e} of the peak); best lag {best['lag']}: {best['max_rel']:.2e}"


def describe_offline(found: Dict[str, object], name: str) -> str:
    text = f"    vs the offline file {name}:"
    if "stated" in found:
        text += (
            f" at the stated delay + 2B-64 ({found['stated']['lag']}): {found['stated']['max_rel']:.2e} of the peak;"
        )
    return text + f" best lag {found['best']['lag']}: {found['best']['max_rel']:.2e} of the peak"


class Bench:
    """The alternated runs over the files, with the Python references computed once per file."""

    def __init__(self, args, signal: np.ndarray) -> None:
        self.args, self.signal, self.refs, self.results = args, signal, {}, []
        self.offline = {Path(a).resolve(): Path(b) for a, b in args.offline or []}
        self.offline_refs: Dict[Path, np.ndarray] = {}

    def reference(self, path: Path) -> np.ndarray:
        if path not in self.refs:
            self.refs[path] = python_stream(path, "forward", self.signal, self.args.buffer)
        return self.refs[path]

    def run(self, round_: int, path: Path) -> None:
        seconds, b = self.signal.size / SR, self.args.buffer
        pd_run = run_patch(self.args, path, ["forward"], [], self.signal)
        entry = {"round": round_, "file": path.name, "patch": "forward", **timing(pd_run, seconds, b)}
        entry["exact"] = forward_exactness(pd_run, self.reference(path), b)
        print(f"[{round_}] " + describe(f"{path.name} forward", entry, b), flush=True)
        print(describe_exact(entry["exact"], chain=False), flush=True)
        offline = self.offline.get(path.resolve())
        if offline is not None:
            if offline not in self.offline_refs:
                self.offline_refs[offline] = offline_forward(offline, self.signal)
            entry["offline"] = offline_exactness(pd_run, self.offline_refs[offline], path, b)
            print(describe_offline(entry["offline"], offline.name), flush=True)
        self.results.append(entry)
        params = method_params(path, ["encode", "decode"]) if self.args.chain else {}
        if len(params) == 2:
            pd_run = run_patch(self.args, path, ["encode", "decode"], [params["encode"][2]], self.signal)
            entry = {"round": round_, "file": path.name, "patch": "encode->decode", **timing(pd_run, seconds, b)}
            entry["exact"] = chain_exactness(pd_run, self.reference(path), b)
            print(f"[{round_}] " + describe(f"{path.name} encode->decode", entry, b), flush=True)
            print(describe_exact(entry["exact"], chain=True), flush=True)
            self.results.append(entry)

    def baseline(self) -> None:
        """The same patch without an nn~ object (input wired to output; the library loaded): Pd's own cost."""
        seconds, b = self.signal.size / SR, self.args.buffer
        pd_run = run_patch(self.args, Path(os.devnull), [], [], self.signal)
        entry = {"file": None, "patch": "no nn~", **timing(pd_run, seconds, b)}
        entry["exact"] = {"identity": bool(np.array_equal(pd_run.output, self.signal))}
        banner = next((line.strip() for _, line in pd_run.lines if line.startswith("nn~ -")), "no nn~ banner")
        print(banner, flush=True)
        print(
            describe("Pd without nn~ objects", entry, b) + f" | output == input: {entry['exact']['identity']}",
            flush=True,
        )
        self.results.append(entry)


def _span(values: List[float], digits: int) -> str:
    low, high = min(values), max(values)
    return f"{low:.{digits}f}" if round(low, digits) == round(high, digits) else f"{low:.{digits}f}-{high:.{digits}f}"


def _exact_cell(entry: Dict[str, object]) -> str:
    found = entry["exact"]
    if entry["patch"] == "forward":
        return "bit-exact" if found["max_abs"] == 0.0 else f"{found['max_rel']:.1e} of the peak"
    return (
        f"lag {found['lag']}: {found['max_rel']:.1e}; before the signal max {found['before_max']:.2g}; "
        f"settles in {found['settle_samples']} samples"
    )


def summary(results: List[Dict[str, object]]) -> str:
    """A markdown table of the runs: ranges over the rounds of each file and patch."""
    rows = [
        "| file | patch | load wall (s) | load CPU (s) | calls 1, 2 (ms) | CPU s per s | peak RSS (MB) | exactness |"
    ]
    rows.append("|---|---|---|---|---|---|---|---|")
    keys = []
    for entry in results:
        if entry["file"] is not None and (entry["file"], entry["patch"]) not in keys:
            keys.append((entry["file"], entry["patch"]))
    for file, patch in keys:
        runs = [e for e in results if (e["file"], e["patch"]) == (file, patch)]
        calls = "; ".join(f"{e['call1_wall_ms']:.0f}, {e['call2_wall_ms']:.0f}" for e in runs)
        rows.append(
            f"| {Path(file).name} | {patch} | {_span([e['load_wall_s'] for e in runs], 2)} | "
            f"{_span([e['load_cpu_s'] for e in runs], 2)} | {calls} | "
            f"{_span([e['steady_cpu_per_audio_s'] for e in runs], 3)} | {_span([e['peak_rss_mb'] for e in runs], 0)} | "
            f"{_exact_cell(runs[-1])} |"
        )
    return "\n".join(rows)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="nn~ files (.ts) with a 1-in/1-out forward")
    parser.add_argument(
        "--nn-dir", type=Path, default=os.environ.get("NN_TILDE_DIR"), help="folder of nn~.pd_linux (or NN_TILDE_DIR)"
    )
    parser.add_argument("--pd", default="pd", help="the Pd binary")
    parser.add_argument(
        "--export", help="first export this preset of the package's RAVE (v2, small; as benchmarks/load.py)"
    )
    parser.add_argument("--out", type=Path, default=Path("build/nn_pd"), help="where --export writes")
    parser.add_argument("--buffer", type=int, default=2048, help="nn~ buffer size (bufsize message)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the test signal")
    parser.add_argument("--input", type=Path, help="a mono sound file at 48 kHz instead of the test signal")
    parser.add_argument("--rounds", type=int, default=2, help="runs per file, files alternated")
    parser.add_argument("--chain", action="store_true", help="also run [nn~ encode] -> [nn~ decode] against forward")
    parser.add_argument(
        "--offline",
        nargs=2,
        action="append",
        metavar=("FILE", "OFFLINE"),
        help="also compare FILE's forward in Pd with OFFLINE's (e.g. rave export without --streaming); repeatable",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the patch without nn~")
    parser.add_argument(
        "--nrt",
        action="store_true",
        help="run Pd without real-time priority (-nrt): no watchdog; by default Pd takes it where allowed (root)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds before a Pd run is killed")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)
    if args.nn_dir is None or not (args.nn_dir / "nn~.pd_linux").exists():
        parser.error("--nn-dir (or NN_TILDE_DIR) must name the folder that holds nn~.pd_linux (docs/nn_tilde_build.md)")
    files = list(args.files)
    if args.export:
        from load import export_preset

        files.append(export_preset(args.export, args.out))
    if not files:
        parser.error("give .ts files, or --export PRESET")
    signal = read_signal(args.input) if args.input else test_signal(args.seconds)
    bench = Bench(args, signal)
    print(
        f"nn~ in Pd: {signal.size / SR:.1f} s of audio, buffer {args.buffer}, OMP_NUM_THREADS=1, files alternated",
        flush=True,
    )
    if not args.no_baseline:
        bench.baseline()
    for round_ in range(args.rounds):
        for path in files:
            bench.run(round_, path)
    print(summary(bench.results), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"buffer": args.buffer, "seconds": signal.size / SR, "runs": bench.results}, indent=1)
        )


if __name__ == "__main__":
    main()
