"""Side by side on one acids-rave run: ``rave export --streaming`` and ``streamify export RUN``.

``python benchmarks/rave_run_compare.py --out DIR [--capacity 96] [--latent 128] [--methods encode] [--reuse] [--before FILE]``

Writes a run of acids-rave's own ``v2.gin`` (random weights, the given capacity and latent size, 48 kHz)
like ``rave train`` does (``tests/export/rave_run.py``), then three files:

* ``rave.ts`` and ``rave_streaming.ts``: acids-rave 2.3.1's ``scripts/export.py`` (``main``, as
  ``rave export --run RUN [--streaming]`` runs it; it needs ``pip install --no-deps nn_tilde``), with its two
  random draws replaced by their expected values so that files can be compared: the posterior at its mean
  (``VariationalEncoder.reparametrize`` returns the mean) and zeros in the cut dimensions
  (``pre_process_latent``);
* ``streamify.ts``: ``export_rave_run(RUN, methods, noise=False)``.

Then, for each method: the error of each streamed file (a fresh load, 2048-sample buffers, batch 1) against
the offline file, relative to the offline output's peak around its per-channel mean, at the lag that fits best (0 to 3 s or a third of the signal searched, each lag judged on the same frames) and, for streamify, at its stated delay;
the wall and CPU time per buffer at 2048 samples on one thread, the streaming files called alternately (A/B
rounds; ``--before FILE``: another streamify file of the run, e.g. one exported by an earlier version, in the same rounds); and the first three calls after a fresh load (streamify's after ``get_methods()``, as nn~ loads it). Prints and writes ``DIR/rave_run_compare.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tests" / "export")]

SR = 48000
BUFFER = 2048


def _deterministic_rave_export(export) -> None:
    """acids-rave's export with its random draws at their expected value (see the module docstring)."""
    import rave.blocks
    import torch.nn.functional as F

    # named as the methods they replace: TorchScript compiles them under their function name
    def reparametrize(self, z: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:  # the posterior mean
        mean, _ = z.chunk(2, 1)
        return mean, torch.zeros(1)

    def pre_process_latent(self, z: torch.Tensor) -> torch.Tensor:  # zeros in the cut dimensions
        zeros = torch.zeros(z.shape[0], self.full_latent_size - z.shape[1], z.shape[-1]).type_as(z)
        z = F.conv1d(torch.cat([z, zeros], 1), self.latent_pca.T.unsqueeze(-1))
        return z + self.latent_mean.unsqueeze(-1)

    rave.blocks.VariationalEncoder.reparametrize = reparametrize
    export.VariationalScriptedRAVE.pre_process_latent = pre_process_latent


def rave_export(run: Path, out: Path, streaming: bool) -> Path:
    """``rave export --run RUN [--streaming]`` (acids-rave's own main), deterministic; returns the file."""
    from streamify.models.rave_import import import_rave

    import_rave()
    grad = torch.is_grad_enabled()
    import scripts.export as export

    torch.set_grad_enabled(grad)
    _deterministic_rave_export(export)
    export.FLAGS(
        ["export", "--run", str(run), "--output", str(out), "--name", "rave"] + (["--streaming"] if streaming else [])
    )
    with torch.no_grad():
        export.main(None)
    return out / ("rave_streaming.ts" if streaming else "rave.ts")


def streamed(module, method: str, x: torch.Tensor, step: int) -> torch.Tensor:
    call = getattr(module, method)
    with torch.inference_mode():
        return torch.cat([call(x[..., i : i + step]) for i in range(0, x.size(-1), step)], -1)


def spread(ref: torch.Tensor) -> float:
    """The peak of ``ref`` around its per-channel mean: errors are relative to it (a random-weight encoder's
    latents sit on offsets much larger than their variation, which a relative-to-peak error would hide)."""
    return float((ref - ref.mean(-1, keepdim=True)).abs().max())


def best_lag(y: torch.Tensor, ref: torch.Tensor, most: int) -> Tuple[int, float]:
    """The lag (frames, up to ``most`` and a third of the signal) of ``y`` behind ``ref`` with the smallest max
    error, and that error relative to :func:`spread`; every lag is judged on the same frames of ``y``."""
    top = min(most, y.size(-1) // 3)
    window = y[..., top:]
    peak = spread(ref)
    best = (0, float("inf"))
    for lag in range(0, top + 1):
        error = float((window - ref[..., top - lag : y.size(-1) - lag]).abs().max()) / peak
        if error < best[1]:
            best = (lag, error)
    return best


def timings(
    modules: Dict[str, object], method: str, x: torch.Tensor, step: int, rounds: int = 7
) -> Dict[str, Tuple[float, float]]:
    """Median wall and CPU (this process's) ms per buffer of each module's ``method``, called alternately
    (A/B rounds), one thread."""
    torch.set_num_threads(1)
    times: Dict[str, List[Tuple[float, float]]] = {name: [] for name in modules}
    calls = x.size(-1) // step
    for module in modules.values():  # warm: compiled and profiled before timing
        streamed(module, method, x[..., : 4 * step], step)
    for _ in range(rounds):
        for name, module in modules.items():
            call = getattr(module, method)
            with torch.inference_mode():
                start, cpu = time.perf_counter(), time.process_time()
                for i in range(calls):
                    call(x[..., i * step : (i + 1) * step])
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                times[name].append((1000 * wall / calls, 1000 * cpu / calls))
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return {name: (median([w for w, _ in t]), median([c for _, c in t])) for name, t in times.items()}


def first_calls(path: Path, method: str, x: torch.Tensor, step: int, warm: bool) -> List[float]:
    """ms of the first three calls of ``method`` after a fresh load (``warm``: after ``get_methods()``, as nn~)."""
    torch.set_num_threads(1)
    module = torch.jit.load(str(path))
    if warm:
        module.get_methods()
    times = []
    with torch.inference_mode():
        for i in range(3):
            start = time.perf_counter()
            getattr(module, method)(x[..., i * step : (i + 1) * step])
            times.append(round(1000 * (time.perf_counter() - start), 1))
    return times


def measure(paths: Dict[str, Path], info: Dict, method: str, given, want, in_ratio: int, out_ratio: int) -> Dict:
    """Exactness against the offline file, latency, time per buffer and first calls of each file's ``method``."""
    entry: Dict[str, Dict[str, object]] = {}
    step = BUFFER // in_ratio
    for name, path in paths.items():
        y = streamed(torch.jit.load(str(path)), method, given, step)
        lag, error = best_lag(y, want, 3 * SR // out_ratio)
        entry[name] = {"best_lag_samples": lag * out_ratio, "max_error_at_best_lag": float(f"{error:.3g}")}
        if name.startswith("streamify"):
            stated = int(info["methods"][method]["delay_frames"])
            error = float((y[..., stated:] - want[..., : y.size(-1) - stated]).abs().max()) / spread(want)
            entry[name]["stated_delay_samples"] = stated * out_ratio
            entry[name]["max_error_at_stated_delay"] = float(f"{error:.3g}")
        entry[name]["first_calls_ms"] = first_calls(path, method, given, step, warm=name.startswith("streamify"))
    modules = {name: torch.jit.load(str(path)) for name, path in paths.items()}
    for name, (ms, cpu_ms) in timings(modules, method, given, step).items():
        entry[name]["ms_per_buffer_1_thread"] = round(ms, 2)
        entry[name]["cpu_ms_per_buffer_1_thread"] = round(cpu_ms, 2)
        entry[name]["cpu_s_per_audio_s"] = round(cpu_ms / 1000 * SR / BUFFER, 3)
    return entry


def export_all(out: Path, capacity: int, latent: int, methods: List[str]):
    """Write the run and the three files; returns the two RAVE files, streamify's metadata and export times."""
    from rave_run import write_run

    from streamify.export.rave import export_rave_run

    out.mkdir(parents=True, exist_ok=True)
    bindings = [f"CAPACITY = {capacity}", f"LATENT_SIZE = {latent}", f"SAMPLING_RATE = {SR}"]
    run = write_run(out / "run", "v2.gin", bindings)
    seconds = {}
    started = time.perf_counter()
    offline_path, streaming_path = rave_export(run, out, False), rave_export(run, out, True)
    seconds["rave (both files)"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    info = export_rave_run(run, out / "streamify.ts", methods=methods, noise=False)
    seconds["streamify"] = round(time.perf_counter() - started, 1)
    return offline_path, streaming_path, info, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--capacity", type=int, default=96)
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--methods", default="encode", help="comma-separated methods of the streamify file")
    parser.add_argument("--reuse", action="store_true", help="measure the run and files already in --out")
    parser.add_argument(
        "--before", type=Path, help="another streamify file of the run, timed alternately with the others"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    methods = args.methods.split(",")
    if args.reuse:
        from streamify.export import read_info

        offline_path, streaming_path = args.out / "rave.ts", args.out / "rave_streaming.ts"
        info = read_info(args.out / "streamify.ts")
        seconds = json.loads((args.out / "rave_run_compare.json").read_text())["export_seconds"]
    else:
        offline_path, streaming_path, info, seconds = export_all(args.out, args.capacity, args.latent, methods)
    offline = torch.jit.load(str(offline_path))
    x = torch.randn(1, 1, 96 * BUFFER, generator=torch.Generator().manual_seed(0)) * 0.5
    ratio = int(offline.encode_params[3])
    with torch.no_grad():
        z = offline.encode(x)
        reference = {"encode": (x, z, 1, ratio), "decode": (z, offline.decode(z), ratio, 1)}
        reference["forward"] = (x, offline.forward(x), 1, 1)
    report: Dict[str, object] = {"capacity": args.capacity, "latent": args.latent, "sample_rate": SR}
    report.update({"buffer": BUFFER, "export_seconds": seconds, "methods": {}})
    for method, (given, want, in_ratio, out_ratio) in reference.items():
        paths = {"rave": streaming_path}
        if method in methods:
            paths["streamify"] = args.out / "streamify.ts"
            if args.before is not None:
                paths["streamify (before)"] = args.before
        report["methods"][method] = measure(paths, info, method, given, want, in_ratio, out_ratio)
    (args.out / "rave_run_compare.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
