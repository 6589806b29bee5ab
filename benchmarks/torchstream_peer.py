"""streamify against TorchStream (torchstream-lib 1.0.2) on models of the corpus (tests/convert/corpus).

    python benchmarks/torchstream_peer.py                      # the default models, 2 alternating rounds
    python benchmarks/torchstream_peer.py --rounds 1 --buffer 512 --json peer.json

TorchStream streams a model as a black box: it feeds NaNs to find which inputs reach which outputs, solves
for the sliding-window parameters (z3), then re-runs the model on the retained input context at each call.
streamify converts the model into cached streaming layers (``streamify.convert``, verification included).
For each model and each tool, in a fresh process (1 torch thread, float32):

* converts: whether the tool gives a stream (TorchStream: its solver finds parameters within ``--limit`` s);
* conversion: seconds to get the stream (TorchStream's solver; streamify's ``convert``), after one
  conversion of a one-layer model in the same process (lazy imports and first-call costs left out);
* latency: output frames still owed once the input is in, at steady state (input fed / ratio - output
  emitted), counted the same way for both; streamify's is its reported ``delay``;
* CPU per buffer: median seconds of one call on a buffer of ``--buffer`` input frames (eager; for
  streamify also its TorchScript form, what nn~ and the exports run, timed after one pass over the signal
  whose output must equal the eager stream's);
* error: max abs difference of the stream to the offline output (aligned).

Rounds alternate the order of the tools. Timings are of this machine at the time of the run; other
work on the machine disturbs them: compare rows of one run only. Needs the ``convert`` and ``peer`` extras.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT / "tests" / "convert" / "corpus", ROOT / "tests", ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

#: corpus entries compared by default: vocoders, a separator, filterbanks, a TCN, a codec decoder, STFTs
MODELS = (
    "asteroid-filterbanks/FreeFB-encoder",
    "diffsptk/PQMF",
    "pytorch-tcn/TCN-layernorm-skip-gate",
    "asteroid/ConvTasNet-cLN",
    "parallel-wavegan/HiFiGAN",
    "transformers/Dac-decoder",
    "nnaudio/STFT",
    "openunmix/TorchSTFT-magnitude",
)


def _entry(name: str):
    from corpus_entries import ENTRIES

    return next(entry for entry in ENTRIES if entry.name == name)


def _model(name: str):
    import torch

    entry = _entry(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = entry.build().float().eval()
    generator = torch.Generator().manual_seed(2)
    return entry, model, generator


def _lag(fed: int, emitted: int, ratio: float) -> float:
    """Output frames still owed after ``fed`` input frames of which ``emitted`` output frames came out."""
    return fed / ratio - emitted


def _time_calls(step, buffers, repeat: int) -> float:
    times = []
    for chunk in buffers[:repeat]:
        began = time.perf_counter()
        step(chunk)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def run_streamify(name: str, buffer: int, calls: int) -> Dict:
    import torch

    from streamify import StreamingError
    from streamify.convert import convert
    from streamify.runtime.state import reset

    entry, model, generator = _model(name)
    example = torch.randn(1, entry.channels, max(entry.frames, buffer), generator=generator)
    convert(torch.nn.Conv1d(1, 1, 3, padding=1), torch.randn(1, 1, 64))  # warm: lazy imports, first capture
    began = time.perf_counter()
    try:
        stream = convert(model, example)
    except StreamingError as error:
        return {"converts": False, "conversion_s": time.perf_counter() - began, "why": str(error)[:300]}
    seconds = time.perf_counter() - began
    buffer = max(buffer // stream.buffer_multiple, 1) * stream.buffer_multiple
    x = torch.randn(1, entry.channels, buffer * calls, generator=generator)
    buffers = list(x.split(buffer, -1))
    reset(stream)
    with torch.no_grad():
        outputs = [stream(chunk) for chunk in buffers]
        offline = model(x)
    streamed = torch.cat(outputs, -1)
    ratio = float(stream.ratio)
    delay = stream.delay
    n = min(streamed.size(-1) - delay, offline.size(-1))
    error = (streamed[..., delay : delay + n] - offline[..., :n]).abs().max().item()
    reset(stream)
    with torch.no_grad():
        per_call = _time_calls(stream, buffers, calls)
    try:  # what a host runs: the TorchScript form (nn~, the exports)
        scripted = torch.jit.script(stream)
        scripted.reset(None)
        with torch.no_grad():
            same = torch.equal(torch.cat([scripted(chunk) for chunk in buffers], -1), streamed)
            scripted.reset(None)
            per_call_script = _time_calls(scripted, buffers, calls) if same else None
    except Exception:  # noqa: BLE001 - a model that does not script: eager only
        per_call_script = None
    return {
        "converts": True,
        "conversion_s": seconds,
        "latency_frames": _lag(x.size(-1), streamed.size(-1) - delay, ratio),
        "buffer": buffer,
        "cpu_per_buffer_s": per_call,
        "cpu_per_buffer_script_s": per_call_script,
        "max_error": error,
    }


def run_torchstream(name: str, buffer: int, calls: int) -> Dict:
    import torch
    from torchstream import SeqSpec, SlidingWindowStream, find_sliding_window_params

    entry, model, generator = _model(name)
    with torch.no_grad():
        channels_out = model(torch.zeros(1, entry.channels, max(entry.frames, buffer))).size(1)
    in_spec, out_spec = SeqSpec(1, entry.channels, -1), SeqSpec(1, channels_out, -1)
    with torch.no_grad():  # warm: lazy imports, the solver's first run
        find_sliding_window_params(torch.nn.Conv1d(1, 1, 3, padding=1), SeqSpec(1, 1, -1), SeqSpec(1, 1, -1))
    began = time.perf_counter()
    try:
        with torch.no_grad():
            params = find_sliding_window_params(model, in_spec, out_spec)[0]
    except Exception as error:  # noqa: BLE001 - the solver's failure is the outcome
        return {
            "converts": False,
            "conversion_s": time.perf_counter() - began,
            "why": f"{type(error).__name__}: {error}"[:300],
        }
    seconds = time.perf_counter() - began
    x = torch.randn(1, entry.channels, buffer * calls, generator=generator)
    buffers = list(x.split(buffer, -1))
    stream = SlidingWindowStream(model, params, in_spec, out_spec)
    outputs = []
    with torch.no_grad():
        for chunk in buffers:
            outputs.append(stream(chunk, allow_zero_size_outputs=True).data[0])
        offline = model(x)
    streamed = torch.cat([torch.as_tensor(o) for o in outputs], -1)
    ratio = params.stride_in / params.stride_out
    n = min(streamed.size(-1), offline.size(-1))
    error = (streamed[..., :n] - offline[..., :n]).abs().max().item()
    stream = SlidingWindowStream(model, params, in_spec, out_spec)
    with torch.no_grad():
        per_call = _time_calls(lambda c: stream(c, allow_zero_size_outputs=True), buffers, calls)
    return {
        "converts": True,
        "conversion_s": seconds,
        "latency_frames": _lag(x.size(-1), streamed.size(-1), ratio),
        "buffer": buffer,
        "cpu_per_buffer_s": per_call,
        "max_error": error,
        "params": repr(params),
    }


def _worker(tool: str, name: str, buffer: int, calls: int) -> None:
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    result = (run_streamify if tool == "streamify" else run_torchstream)(name, buffer, calls)
    print("RESULT " + json.dumps(result))


def _spawn(tool: str, name: str, buffer: int, calls: int, limit: float) -> Dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        tool,
        "--model",
        name,
        "--buffer",
        str(buffer),
        "--calls",
        str(calls),
    ]
    began = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"converts": False, "conversion_s": limit, "why": f"no stream within {limit:g} s (killed)"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"converts": False, "conversion_s": time.perf_counter() - began, "why": f"crash: {tail[0][:200]}"}
    return json.loads(lines[-1][len("RESULT ") :])


def _row(name: str, tool: str, result: Dict) -> str:
    if not result["converts"]:
        return f"| {name} | {tool} | no | {result['conversion_s']:.1f} | | | | {result.get('why', '')[:90]} |"
    script = result.get("cpu_per_buffer_script_s")
    return (
        f"| {name} | {tool} | yes | {result['conversion_s']:.2f} | {result['latency_frames']:g} | "
        f"{1000 * result['cpu_per_buffer_s']:.3f} | {'' if script is None else f'{1000 * script:.3f}'} | "
        f"max error {result['max_error']:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--buffer", type=int, default=256, help="input frames per call (rounded to a valid size)")
    parser.add_argument("--calls", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2, help="rounds, alternating which tool runs first")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds allowed per tool and model")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", choices=("streamify", "torchstream"), help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.model, args.buffer, args.calls)
        return
    results: List[Dict] = []
    print(
        "| model | tool | converts | conversion (s) | latency (output frames) | CPU per buffer (ms) "
        "| TorchScript (ms) | note |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for round_index in range(args.rounds):
        tools = ("streamify", "torchstream") if round_index % 2 == 0 else ("torchstream", "streamify")
        for name in args.models:
            for tool in tools:
                result = _spawn(tool, name, args.buffer, args.calls, args.limit)
                results.append({"round": round_index, "model": name, "tool": tool, **result})
                print(_row(name, tool, result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
