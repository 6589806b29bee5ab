"""The benchmark run: the matrix of configurations, the checks, the profile, and the results.

:func:`run_suite` measures, for each reference model, thread count and batch size: the offline
model on a 10 s signal, then for each buffer size every streaming method and engine one after
the other (so that the ratios between methods are taken under the same load), then the peak
memory (child process), the exactness checks and the profile. It returns one JSON-ready dict;
:mod:`harness.report` turns it into files.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

import torch

from harness.measure import (
    FULL_PLAN,
    QUICK_PLAN,
    Plan,
    Timing,
    floor_seconds,
    load_average,
    machine_floor,
    machine_info,
    time_offline,
    time_stream,
)
from harness.methods import (
    CACHED_CONV,
    OVERLAP_ADD,
    STREAMIFY,
    Method,
    Prepared,
    forget_scripted_streams,
    make_method,
    onnx_support,
    prepare,
)
from harness.reference import CONFIGS, RAVE_V2, RAVE_V2_SMALL, weight_tensor_bytes

#: buffer sizes the issue asks for; each model keeps the multiples of its ratio
BUFFERS = (256, 512, 1024, 2048, 4096, 8192, 16384)
#: (method, engine) pairs in the order they run for each buffer size
RUNS = (
    (STREAMIFY, "eager"),
    (STREAMIFY, "script"),
    (STREAMIFY, "frozen"),
    (STREAMIFY, "onnx"),
    (CACHED_CONV, "eager"),
    (CACHED_CONV, "script"),
    (OVERLAP_ADD, "eager"),
)
OFFLINE_SECONDS = 10.0


@dataclass
class Options:
    """What to measure."""

    mode: str = "standard"
    models: List[str] = field(default_factory=lambda: [RAVE_V2.name])
    buffers: Optional[List[int]] = None  # None: BUFFERS, those the model's ratio allows
    threads: List[int] = field(default_factory=lambda: [1])
    batches: List[int] = field(default_factory=lambda: [1, 4])
    engines: List[str] = field(default_factory=lambda: ["eager", "script"])
    methods: List[str] = field(default_factory=lambda: [STREAMIFY, CACHED_CONV, OVERLAP_ADD])
    plan: Plan = field(default_factory=lambda: Plan(min_calls=12, min_seconds=1.0, max_calls=200, offline_reps=2))
    memory: bool = True
    profile: bool = True
    exactness: bool = True
    profile_buffer: int = 2048
    #: time each conv's products at the run's buffer sizes and batches first (streamify.tune, 1 thread)
    tune: bool = True

    @classmethod
    def quick(cls) -> Options:
        """The small model, three buffer sizes, one thread, few repetitions (8 min on a loaded 2-core machine)."""
        return cls(
            mode="quick",
            models=[RAVE_V2_SMALL.name],
            buffers=[512, 2048, 8192],
            threads=[1],
            batches=[1, 4],
            engines=["eager", "script"],
            plan=QUICK_PLAN,
        )

    @classmethod
    def full(cls) -> Options:
        """Both models, every buffer size, 1 and 2 threads, batch 1 and 4, every engine."""
        return cls(
            mode="full",
            models=[RAVE_V2.name, RAVE_V2_SMALL.name],
            threads=[1, 2],
            batches=[1, 4],
            engines=["eager", "script", "frozen", "onnx"],
            plan=FULL_PLAN,
        )

    @classmethod
    def standard(cls) -> Options:
        """The big model, every buffer size, one thread, batch 1 and 4, eager and TorchScript."""
        return cls()


def model_buffers(options: Options, ratio: int) -> List[int]:
    sizes = options.buffers if options.buffers else list(BUFFERS)
    return [n for n in sizes if n % ratio == 0]


def _offline_length(prepared: Prepared) -> int:
    config = prepared.config
    return config.total_ratio * math.ceil(OFFLINE_SECONDS * config.sample_rate / config.total_ratio)


Progressor = Callable[[str, int], None]


class Counter:
    """Counts the work of a run for the progress bar (one unit per timed configuration)."""

    def __init__(self, options: Options) -> None:
        self.total = 0
        for name in options.models:
            ratio = CONFIGS[name].total_ratio
            runs = [r for r in RUNS if r[0] in options.methods and r[1] in options.engines]
            per_thread = len(options.batches) * (1 + len(model_buffers(options, ratio)) * len(runs))
            self.total += len(options.threads) * per_thread
            self.total += 3  # prepare, checks, memory
        if options.profile:
            self.total += 1


def _tune(prepared: Prepared, options: Options, tick: Progressor, threads: int = 1) -> Dict[str, object]:
    """Run :func:`streamify.tune` on the streamify model for the run's buffers and batches at ``threads``
    threads, as a host would at its own setting, and forget the streams scripted with the earlier choices."""
    from streamify.tuning import tune

    tick(f"{prepared.config.name}: tuning the conv products ({threads} thread{'s' if threads > 1 else ''})", 0)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    forget_scripted_streams(prepared)
    began = time.perf_counter()
    try:
        report = tune(prepared.stream, model_buffers(options, prepared.config.total_ratio), options.batches)
    finally:
        torch.set_num_threads(before)
    chosen: Dict[str, int] = {}
    for row in report.layers:
        chosen[row.chosen] = chosen.get(row.chosen, 0) + 1
    return {
        "seconds": time.perf_counter() - began,
        "choices": chosen,
        "changed": sum(1 for row in report.layers if row.chosen != row.default),
        "tuned": len(report.layers),
        "saved_ms_eager": report.saved_ms,
        "native": report.native,
        "whole_calls_undone": sum(1 for check in report.whole_calls if not check.kept),
        "whole_calls": len(report.whole_calls),
        "native_note": report.native_note,
    }


def run_suite(
    options: Options, advance: Optional[Progressor] = None, log: Optional[Callable[[str], None]] = None
) -> Dict[str, object]:
    """Measure everything ``options`` asks for; returns the JSON-ready results."""
    tick = advance or (lambda description, units: None)
    say = log or (lambda message: None)
    started = time.perf_counter()
    threads_before = torch.get_num_threads()
    results: Dict[str, object] = {
        "meta": {**machine_info(), "mode": options.mode, "options": _options_dict(options)},
        "models": {},
        "floor": {},
        "offline": [],
        "runs": [],
        "memory": [],
        "exactness": [],
        "profile": None,
        "notes": [],
    }
    notes: List[str] = results["notes"]
    if "onnx" in options.engines:
        reason = onnx_support()
        if reason is not None:
            notes.append(f"ONNX Runtime runs skipped: {reason}")
    skipped = set()
    biggest: Optional[Prepared] = None
    try:
        for name in options.models:
            config = CONFIGS[name]
            tick(f"{name}: building, converting", 0)
            prepared = prepare(config)
            notes.extend(n for n in prepared.notes if n not in notes)
            results["models"][name] = _model_entry(prepared, options)
            tick(f"{name}: machine floor", 1)
            if biggest is None or prepared.facts.weight_bytes > biggest.facts.weight_bytes:
                biggest = prepared
            results["floor"][name] = machine_floor(
                weight_tensor_bytes(prepared.model),
                options.threads,
                options.plan.probe_reps,
                quick=options.mode == "quick",
            )
            for threads in options.threads:
                if options.tune:  # the choices are timed at the host's thread count
                    entry = results["models"][name]
                    entry["tuning_by_threads"][str(threads)] = _tune(prepared, options, tick, threads)
                    entry["tuning"] = entry["tuning"] or entry["tuning_by_threads"][str(threads)]
                torch.set_num_threads(threads)
                for batch in options.batches:
                    _run_block(prepared, options, threads, batch, results, skipped, notes, tick)
            if options.exactness:
                tick(f"{name}: exactness checks", 0)
                from harness.exactness import exactness_checks

                results["exactness"].extend(exactness_checks(prepared, quick=options.mode == "quick"))
            tick(f"{name}: checks done", 1)
            if options.memory:
                tick(f"{name}: peak memory (child process)", 0)
                results["memory"].extend(_memory(prepared, options, notes))
            tick(f"{name}: memory done", 1)
        if options.profile and biggest is not None:
            tick(f"{biggest.config.name}: profile", 0)
            torch.set_num_threads(1)
            results["profile"] = _profile(biggest, options, results)
            tick("profile done", 1)
    finally:
        torch.set_num_threads(threads_before)
    _attach_memory(results)
    _fits(results)
    results["meta"]["load_average_end"] = load_average()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    say(f"done in {results['meta']['seconds']} s")
    return results


def _model_entry(prepared: Prepared, options: Options) -> Dict[str, object]:
    """A model's facts, each method's delay, the overlap-add's contexts and its buffer sizes (results["models"])."""
    return {
        **asdict(prepared.facts),
        "delay_samples": {
            STREAMIFY: int(prepared.stream.delay),
            CACHED_CONV: None if prepared.cached_conv is None else int(prepared.cached_conv.cumulative_delay),
            OVERLAP_ADD: prepared.ola_right,
        },
        "overlap_add_context": [prepared.ola_left, prepared.ola_right],
        "buffer_multiple": int(prepared.stream.buffer_multiple),
        "receptive_field": int(prepared.stream.receptive_field),
        "buffers": model_buffers(options, prepared.config.total_ratio),
        "tuning": None,  # the first thread count's tuning
        "tuning_by_threads": {},
    }


def _options_dict(options: Options) -> Dict[str, object]:
    data = asdict(options)
    data["plan"] = asdict(options.plan)
    return data


def _run_block(
    prepared: Prepared,
    options: Options,
    threads: int,
    batch: int,
    results: Dict[str, object],
    skipped: set,
    notes: List[str],
    tick: Progressor,
) -> None:
    """Offline, then every buffer size x method x engine, at one thread count and batch size."""
    name = prepared.config.name
    tick(f"{name} t{threads} b{batch}: offline 10 s", 0)
    offline = _offline_row(prepared, options, threads, batch)
    results["offline"].append(offline)
    tick(f"{name} t{threads} b{batch}: offline done", 1)
    offline_per_sample = offline["median_ms"] / 1e3 / offline["samples"]
    floor = results["floor"][name][str(threads)]
    for buffer in model_buffers(options, prepared.config.total_ratio):
        block: List[Dict[str, object]] = []
        for method_name, engine in RUNS:
            if method_name not in options.methods or engine not in options.engines:
                continue
            label = f"{name} t{threads} b{batch} n{buffer}: {method_name}/{engine}"
            tick(label, 0)
            timed = _time_method(prepared, options, (method_name, engine), threads, batch, buffer, skipped, notes)
            if timed is not None:
                method, timing = timed
                block.append(_run_row(prepared, method, timing, threads, batch, buffer, offline_per_sample, floor))
            tick(label, 1)
        _ratios(block)
        results["runs"].extend(block)


def _offline_row(prepared: Prepared, options: Options, threads: int, batch: int) -> Dict[str, object]:
    """The offline model timed on one 10 s signal."""
    sr = prepared.config.sample_rate
    length = _offline_length(prepared)
    offline = time_offline(prepared.folded, batch, length, options.plan.offline_reps)
    return {
        "model": prepared.config.name,
        "threads": threads,
        "batch": batch,
        "samples": length,
        "median_ms": 1e3 * offline.median,
        "seconds_per_second": offline.median / (length / sr),
        "rtf": offline.median / (length / sr),
        "load": load_average(),
    }


def _time_method(
    prepared: Prepared,
    options: Options,
    run: tuple,
    threads: int,
    batch: int,
    buffer: int,
    skipped: set,
    notes: List[str],
) -> Optional[tuple]:
    """``(method, timing)`` of one (method, engine) ``run``, or None where it is skipped or fails (said in ``notes``;
    a (model, method, engine) that failed once is skipped afterwards)."""
    name = prepared.config.name
    method_name, engine = run
    key = (name, method_name, engine)
    if key in skipped:
        return None
    try:
        method: Method = make_method(prepared, method_name, engine, threads)
    except NotImplementedError as why:
        skipped.add(key)
        message = f"{method_name}/{engine} skipped: {why}"
        if message not in notes:
            notes.append(message)
        return None
    except Exception as error:  # a failing engine must not stop the run
        skipped.add(key)
        notes.append(f"{name}: {method_name}/{engine} failed to build: {type(error).__name__}: {error}")
        return None
    try:
        return method, time_stream(method, batch, buffer, options.plan)
    except Exception as error:
        skipped.add(key)
        notes.append(
            f"{name}: {method_name}/{engine} failed at {buffer} samples, batch {batch}: {type(error).__name__}: {error}"
        )
        return None


def _run_row(
    prepared: Prepared,
    method: Method,
    timing: Timing,
    threads: int,
    batch: int,
    buffer: int,
    offline_per_sample: float,
    floor: Dict[str, float],
) -> Dict[str, object]:
    """One timed configuration: time per call, real-time factor, cost against offline, latency, floor."""
    sr = prepared.config.sample_rate
    macs = prepared.facts.macs_per_second / sr * buffer * batch
    floor_s = floor_seconds(prepared.facts.weight_bytes, macs, floor)
    return {
        "model": prepared.config.name,
        "method": method.method,
        "engine": method.engine,
        "threads": threads,
        "batch": batch,
        "buffer": buffer,
        "median_ms": 1e3 * timing.median,
        "p90_ms": 1e3 * timing.p90,
        "mean_ms": 1e3 * timing.mean,
        "calls": timing.calls,
        "rtf": timing.median / (buffer / sr),
        "cost_vs_offline": (timing.median / buffer) / offline_per_sample,
        "delay_samples": method.delay,
        "latency_ms": 1e3 * (method.delay + buffer) / sr,
        "floor_ms": 1e3 * floor_s,
        "floor_fraction": floor_s / timing.median,
        "load": load_average(),
    }


def _ratios(block: List[Dict[str, object]]) -> None:
    """Speed-ups against cached_conv (same engine, else its fastest) and against overlap-add, within a block."""
    cc = {r["engine"]: r["median_ms"] for r in block if r["method"] == CACHED_CONV}
    ola = [r["median_ms"] for r in block if r["method"] == OVERLAP_ADD]
    for row in block:
        median = row["median_ms"]
        reference = cc.get(row["engine"]) if row["engine"] in cc else (min(cc.values()) if cc else None)
        row["speedup_vs_cached_conv"] = None if reference is None else reference / median
        row["speedup_vs_cached_conv_best"] = min(cc.values()) / median if cc else None
        row["speedup_vs_overlap_add"] = ola[0] / median if ola else None


def _memory(prepared: Prepared, options: Options, notes: List[str]) -> List[Dict[str, object]]:
    from harness.memory import measure_memory

    configs: List[Dict[str, object]] = []
    for batch in options.batches:
        for method in options.methods:
            if method == CACHED_CONV and prepared.cached_conv is None:
                continue
            for buffer in model_buffers(options, prepared.config.total_ratio):
                configs.append({"method": method, "batch": batch, "buffer": buffer})
        configs.append({"method": "offline", "batch": batch, "buffer": _offline_length(prepared)})
    quick = options.mode == "quick"
    answer = measure_memory(prepared.config.name, configs, calls=3 if quick else 6, dry_run=not quick)
    if answer.get("error"):
        notes.append(f"{prepared.config.name}: peak memory not measured: {answer['error']}")
    records = answer.get("results", [])
    for record in records:
        record["model"] = prepared.config.name
    return records


def _attach_memory(results: Dict[str, object]) -> None:
    """Each timed run gets the peak memory of its (model, method, batch, buffer), measured eager, 1 thread."""
    peaks = {(m["model"], m["method"], m["batch"], m["buffer"]): m["peak_bytes"] for m in results["memory"]}
    for row in results["runs"]:
        peak = peaks.get((row["model"], row["method"], row["batch"], row["buffer"]))
        row["peak_memory_mib"] = None if peak is None else peak / 2**20
    for row in results["offline"]:
        match = [
            m
            for m in results["memory"]
            if m["model"] == row["model"] and m["method"] == "offline" and m["batch"] == row["batch"]
        ]
        row["peak_memory_mib"] = match[0]["peak_bytes"] / 2**20 if match else None


def _fits(results: Dict[str, object]) -> None:
    """Per-call fixed cost and cost per sample: a least-squares line through median time against buffer size."""
    fits = []
    groups: Dict[tuple, List[tuple]] = {}
    for row in results["runs"]:
        key = (row["model"], row["method"], row["engine"], row["threads"], row["batch"])
        groups.setdefault(key, []).append((row["buffer"], row["median_ms"]))
    for key, points in groups.items():
        if len(points) < 2:
            continue
        n = len(points)
        mx = sum(p[0] for p in points) / n
        my = sum(p[1] for p in points) / n
        sxx = sum((p[0] - mx) ** 2 for p in points)
        slope = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0
        fits.append(
            {
                "model": key[0],
                "method": key[1],
                "engine": key[2],
                "threads": key[3],
                "batch": key[4],
                "fixed_ms": my - slope * mx,
                "ms_per_1k_samples": 1e3 * slope,
            }
        )
    results["fits"] = fits


def _profile(prepared: Prepared, options: Options, results: Dict[str, object]) -> Dict[str, object]:
    from harness.profile import layer_profile, op_profile, products_in_sequence

    ratio = prepared.config.total_ratio
    buffer = max(options.profile_buffer, ratio)
    buffer -= buffer % ratio
    floor = results["floor"][prepared.config.name].get("1")
    if floor is None:
        torch.set_num_threads(1)
        floor = machine_floor(weight_tensor_bytes(prepared.model), [1], options.plan.probe_reps, quick=True)["1"]
    quick = options.mode == "quick"
    layers = layer_profile(prepared.stream, buffer, calls=8 if quick else 40, warmup=3 if quick else 5, floor=floor)
    ops = op_profile(prepared.stream, buffer, calls=3 if quick else 10, warmup=2 if quick else 5)
    ops4 = op_profile(prepared.stream, buffer, batch=4, calls=2 if quick else 5, warmup=2 if quick else 3)
    reps = 5 if quick else 30
    # the frozen model's own call, timed in alternation with the arithmetic alone: both see the same load
    frozen = make_method(prepared, STREAMIFY, "frozen").run
    products = {
        str(batch): products_in_sequence(prepared.stream, buffer, batch, reps, compare=frozen) for batch in (1, 4)
    }
    return {
        "products_in_sequence": products,
        "model": prepared.config.name,
        "date": machine_info()["date"],
        "load_average": load_average(),
        "buffer": buffer,
        "threads": 1,
        "layers": layers,
        "ops": ops,
        "ops_batch4": ops4,
        "weights_floor_ms": 1e3 * prepared.facts.weight_bytes / floor["bandwidth"],
    }
