"""Benchmark results to files: JSON, PNG plots (matplotlib, the ``bench`` extra) and a markdown summary.

The summary can also be spliced into a hand-written page between the markers
``<!-- bench:begin -->`` and ``<!-- bench:end -->`` (see :func:`splice`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Iterable, List, Optional

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


def write_json(results: Dict[str, object], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    return path


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return str(value)


# ---------------------------------------------------------------------------------------------- selection


def _runs(results: Dict[str, object], **where) -> List[Dict[str, object]]:
    return [r for r in results["runs"] if all(r.get(k) == v for k, v in where.items())]


def _best(rows: Iterable[Dict[str, object]]) -> Optional[Dict[str, object]]:
    rows = list(rows)
    return min(rows, key=lambda r: r["median_ms"]) if rows else None


def _offline(results: Dict[str, object], model: str, threads: int, batch: int) -> Optional[Dict[str, object]]:
    for row in results["offline"]:
        if row["model"] == model and row["threads"] == threads and row["batch"] == batch:
            return row
    return None


def _arithmetic_bound(results: Dict[str, object], model: str) -> Optional[str]:
    """What the convs' arithmetic alone (the profile's products in sequence) leaves for the speed targets."""
    profile = results.get("profile") or {}
    products = profile.get("products_in_sequence")
    if profile.get("model") != model or not products:
        return None
    buffer = profile["buffer"]
    cc = _best(_runs(results, model=model, method="cached_conv", threads=1, batch=1, buffer=buffer))
    one, four = products.get("1"), products.get("4")
    text = f"The convs' arithmetic alone with the kernels the tuned layers run (profile below): {one['ms']:.2f} ms per {buffer} call"
    if "call_ms" in one:
        text += f" (the frozen call, timed alongside: {one['call_ms']:.2f} ms)"
    if cc and buffer == 2048:
        text += f"; the 3x target needs {cc['median_ms'] / 3:.2f} ms for the whole call"
    if four:
        text += f"; at batch 4 the arithmetic alone is {four['ms'] / one['ms']:.2f}x batch 1's"
    return text + "."


def targets(results: Dict[str, object], model: str = "rave-v2") -> List[Dict[str, object]]:
    """The issue's targets, measured: 1 thread, batch 1 unless said; streamify's fastest engine."""
    rows: List[Dict[str, object]] = []

    def add(target: str, goal: str, value: Optional[float], met: Optional[bool], detail: str) -> None:
        rows.append({"target": target, "goal": goal, "measured": value, "met": met, "detail": detail})

    sf = _best(_runs(results, model=model, method="streamify", threads=1, batch=1, buffer=2048))
    cc = _best(_runs(results, model=model, method="cached_conv", threads=1, batch=1, buffer=2048))
    ola = _best(_runs(results, model=model, method="overlap_add", threads=1, batch=1, buffer=2048))
    if sf and cc:
        value = cc["median_ms"] / sf["median_ms"]
        add(
            "faster than cached_conv at 2048, 1 thread",
            ">= 3x",
            value,
            value >= 3.0,
            f"streamify {sf['engine']} {sf['median_ms']:.2f} ms vs cached_conv {cc['engine']} {cc['median_ms']:.2f} ms",
        )
    sf8 = _best(_runs(results, model=model, method="streamify", threads=1, batch=1, buffer=8192))
    if sf8:
        value = sf8["cost_vs_offline"]
        add(
            "cost per sample vs offline at 8192",
            "<= 1.5x",
            value,
            value <= 1.5,
            f"streamify {sf8['engine']} {sf8['median_ms']:.2f} ms per 8192 samples",
        )
    if sf and ola:
        value = ola["median_ms"] / sf["median_ms"]
        add(
            "faster than exact overlap-add at 2048",
            ">= 8x",
            value,
            value >= 8.0,
            f"overlap-add {ola['median_ms']:.2f} ms vs streamify {sf['median_ms']:.2f} ms",
        )
    if sf:
        four = _runs(results, model=model, method="streamify", engine=sf["engine"], threads=1, batch=4, buffer=2048)
        if four:
            value = four[0]["median_ms"] / sf["median_ms"]
            add(
                "batch 4 vs batch 1 at 2048",
                "<= 1.6x",
                value,
                value <= 1.6,
                f"{four[0]['median_ms']:.2f} ms vs {sf['median_ms']:.2f} ms ({sf['engine']})",
            )
    checks = [c for c in results.get("exactness", []) if c["model"] == model]
    least = [c for c in checks if c["check"] == "streamify delay is the least exact delay"]
    exact = [c for c in checks if c["check"] == "streamify (eager)"]
    if least and exact:
        met = bool(least[0]["passed"] and exact[0]["passed"])
        add(
            "latency = model delay + buffering",
            "nothing else",
            None,
            met,
            f"delay {least[0]['delay']} samples, exact at that shift; {least[0]['note']}",
        )
    return rows


# ---------------------------------------------------------------------------------------------- plots


def plot(results: Dict[str, object], folder: Path) -> List[Path]:
    """``rtf_<model>.png`` (real-time factor against buffer size, one line per method/engine, one panel per
    threads x batch) and ``latency_<model>.png``; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: List[Path] = []
    for model in results["models"]:
        runs = _runs(results, model=model)
        if not runs:
            continue
        threads = sorted({r["threads"] for r in runs})
        batches = sorted({r["batch"] for r in runs})
        fig, axes = plt.subplots(
            len(threads), len(batches), figsize=(5.5 * len(batches), 4.2 * len(threads)), squeeze=False, sharex=True
        )
        for i, t in enumerate(threads):
            for j, b in enumerate(batches):
                _rtf_panel(axes[i][j], results, model, t, b)
        axes[0][0].legend(fontsize=7)
        written.append(_save(plt, fig, folder / f"rtf_{model}.png"))
        fig, ax = plt.subplots(figsize=(6, 4.2))
        _latency_panel(ax, runs, model, results["models"][model]["sample_rate"])
        written.append(_save(plt, fig, folder / f"latency_{model}.png"))
    return written


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _rtf_panel(ax, results: Dict[str, object], model: str, t: int, b: int) -> None:
    """Real-time factor against buffer size at ``t`` threads, batch ``b``: each method/engine, floor, offline."""
    runs = _runs(results, model=model, threads=t, batch=b)
    for method, engine in sorted({(r["method"], r["engine"]) for r in runs}):
        rows = sorted(_runs(results, model=model, method=method, engine=engine, threads=t, batch=b), key=_buffer)
        style = {"streamify": "-", "cached_conv": "--", "overlap_add": ":"}.get(method, "-")
        ax.plot([r["buffer"] for r in rows], [r["rtf"] for r in rows], style, marker="o", label=f"{method}/{engine}")
    rows = sorted(_runs(results, model=model, method="streamify", engine="eager", threads=t, batch=b), key=_buffer)
    if rows:
        sr = results["models"][model]["sample_rate"]
        ax.plot(
            [r["buffer"] for r in rows],
            [r["floor_ms"] / 1e3 / (r["buffer"] / sr) for r in rows],
            color="grey",
            linestyle="-.",
            label="machine floor",
        )
    off = _offline(results, model, t, b)
    if off:
        ax.axhline(off["rtf"], color="black", linewidth=0.8, linestyle="--", label="offline (10 s)")
    ax.axhline(1.0, color="red", linewidth=0.6)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_title(f"{model}: {t} thread{'s' if t > 1 else ''}, batch {b}")
    ax.set_xlabel("buffer (samples)")
    ax.set_ylabel("real-time factor (compute / audio)")
    ax.grid(True, which="both", alpha=0.3)


def _latency_panel(ax, runs: List[Dict[str, object]], model: str, sr: int) -> None:
    """Latency (model delay + one buffer) against buffer size, per method, and buffering alone."""
    styles = {"streamify": ("-", "o", 7), "cached_conv": ("--", "x", 9), "overlap_add": (":", "s", 4)}
    for method, (line, marker, size) in styles.items():
        rows = sorted({r["buffer"]: r for r in runs if r["method"] == method}.values(), key=_buffer)
        if rows:
            ax.plot(
                [r["buffer"] for r in rows],
                [r["latency_ms"] for r in rows],
                linestyle=line,
                marker=marker,
                markersize=size,
                label=f"{method} (delay {rows[0]['delay_samples']} samples)",
            )
    buffers = sorted({r["buffer"] for r in runs})
    ax.plot(buffers, [1e3 * b / sr for b in buffers], color="grey", linestyle=":", label="buffering alone")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("buffer (samples)")
    ax.set_ylabel("latency (ms): model delay + one buffer")
    ax.set_title(f"{model}: latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _buffer(row: Dict[str, object]) -> int:
    return int(row["buffer"])


# ---------------------------------------------------------------------------------------------- markdown


def _f(value: object, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def _table(header: List[str], rows: List[List[str]]) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(results: Dict[str, object], plots_prefix: str = "") -> str:
    """The summary: setting, models, tuning, floor, targets, tables per configuration, fits, exactness, profile."""
    meta = results["meta"]
    out: List[str] = [
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cpus']} CPUs visible), torch {meta['torch']}, "
        f"mode `{meta['mode']}`, {meta.get('seconds', '?')} s. "
        f"Load average (1, 5, 15 min) at the start {meta['load_average_start']}, "
        f"at the end {meta.get('load_average_end')}.",
        "",
    ]
    for section in (_models_markdown, _tuning_markdown, _floor_markdown, _targets_markdown, _runs_markdown):
        out += section(results)
    out += _fits_markdown(results) + _exactness_markdown(results)
    if results.get("profile"):
        out += _profile_markdown(results["profile"])
    out += _closing_markdown(results, plots_prefix)
    return "\n".join(out)


def _models_markdown(results: Dict[str, object]) -> List[str]:
    """The models: size, arithmetic, ratio, each method's delay."""
    out: List[str] = []
    out.append("### Models")
    out.append("")
    rows = []
    for name, m in results["models"].items():
        delays = m["delay_samples"]
        sr = m["sample_rate"]
        rows.append(
            [
                name,
                _f(m["parameters"] / 1e6, 2, " M"),
                _f(m["macs_per_second"] / 1e9, 2, " G"),
                _f(m["weight_bytes"] / 2**20, 1, " MiB"),
                str(m["total_ratio"]),
                f"{delays['streamify']} ({1e3 * delays['streamify'] / sr:.1f} ms)",
                "-"
                if delays["cached_conv"] is None
                else f"{delays['cached_conv']} ({1e3 * delays['cached_conv'] / sr:.1f} ms)",
                f"{m['overlap_add_context'][0]} / {m['overlap_add_context'][1]}",
            ]
        )
    out += _table(
        [
            "model",
            "parameters",
            "MAC per s of audio",
            "weights",
            "ratio",
            "streamify delay",
            "cached_conv delay",
            "overlap-add context before / after",
        ],
        rows,
    )
    out.append("")
    return out


def _tuning_markdown(results: Dict[str, object]) -> List[str]:
    """What ``streamify.tune`` chose before the timed runs, per model and thread count."""
    out: List[str] = []
    for name, m in results["models"].items():
        by_threads = m.get("tuning_by_threads") or ({"1": m["tuning"]} if m.get("tuning") else {})
        for threads, tuning in by_threads.items():
            choices = ", ".join(f"{kind} {count}" for kind, count in sorted(tuning["choices"].items()))
            out.append(
                f"{name}: before timing at {threads} thread{'s' if threads != '1' else ''}, `streamify.tune` "
                f"timed each conv's products at this run's buffer sizes and batches ({tuning['seconds']:.1f} s): "
                f"{tuning['tuned']} (layer, rows) choices: {choices}; "
                f"{tuning['changed']} differ from the untuned default"
                + (
                    f"; whole calls undid the choices of {tuning['whole_calls_undone']} of {tuning['whole_calls']} "
                    "(batch, buffer) pairs (slower than before them). "
                    if "whole_calls" in tuning
                    else ". "
                )
                + (
                    "The native kernel (`streamify.native`, compiled for this CPU) was a candidate."
                    if tuning.get("native")
                    else f"The native kernel was not a candidate ({tuning.get('native_note') or 'not asked for'})."
                )
            )
            out.append("")
    return out


def _floor_markdown(results: Dict[str, object]) -> List[str]:
    """The machine floor per model and thread count, and what it means."""
    out: List[str] = []
    out.append("### Machine floor")
    out.append("")
    rows = []
    in_sequence = True
    for name, per_thread in results["floor"].items():
        m = results["models"][name]
        for threads, floor in per_thread.items():
            sequence = floor.get("bandwidth_sequence")  # absent from results written before the sequence probe
            in_sequence = in_sequence and sequence is not None
            rows.append(
                [
                    name,
                    threads,
                    _f(floor.get("bandwidth_reread", floor["bandwidth"]) / 1e9, 1, " GB/s"),
                    _f(None if sequence is None else sequence / 1e9, 1, " GB/s"),
                    _f(floor["macs"] / 1e9, 1, " G"),
                    _f(1e3 * m["weight_bytes"] / floor["bandwidth"], 2, " ms"),
                    _f(1e3 * m["macs_per_second"] / floor["macs"], 1, " ms"),
                ]
            )
    out += _table(
        [
            "model",
            "threads",
            "read bandwidth, one buffer re-read",
            "read bandwidth, the model's weights in sequence",
            "matmul MAC/s",
            "weights read once",
            "MACs of 1 s of audio at peak",
        ],
        rows,
    )
    out.append("")
    out.append(
        "A call cannot be faster than the larger of: reading all weights once, and doing its "
        "multiply-accumulates at the matmul peak. `floor %` below is that floor over the measured median. "
        + (
            "The floor reads the weights at the in-sequence bandwidth (fastest pass over distinct tensors of "
            "the model's sizes, in call order, as a call reads them); re-reading one buffer is faster because "
            "part of it stays in cache."
            if in_sequence
            else "These results predate the in-sequence probe: the floor uses the re-read bandwidth, optimistic "
            "since part of the buffer stays in cache."
        )
    )
    out.append("")
    return out


def _targets_markdown(results: Dict[str, object]) -> List[str]:
    """The targets of each model (1 thread) and the arithmetic bound."""
    out: List[str] = []
    for name in results["models"]:
        goal = targets(results, name)
        if not goal:
            continue
        out.append(f"### Targets ({name}, 1 thread, float32)")
        out.append("")
        out += _table(
            ["target", "goal", "measured", "met", "detail"],
            [
                [
                    g["target"],
                    g["goal"],
                    _f(g["measured"], 2, "x") if g["measured"] is not None else "-",
                    "yes" if g["met"] else "no",
                    g["detail"],
                ]
                for g in goal
            ],
        )
        out.append("")
        bound = _arithmetic_bound(results, name)
        if bound:
            out.append(bound)
            out.append("")
    return out


def _runs_markdown(results: Dict[str, object]) -> List[str]:
    """One table per (model, threads, batch): every buffer size, method and engine."""
    out: List[str] = []
    for name in results["models"]:
        runs = _runs(results, model=name)
        if not runs:
            continue
        for threads in sorted({r["threads"] for r in runs}):
            for batch in sorted({r["batch"] for r in runs}):
                block = sorted(
                    _runs(results, model=name, threads=threads, batch=batch),
                    key=lambda r: (r["buffer"], r["method"], r["engine"]),
                )
                off = _offline(results, name, threads, batch)
                out.append(f"### {name}, {threads} thread{'s' if threads > 1 else ''}, batch {batch}")
                out.append("")
                if off:
                    out.append(
                        f"Offline, one call on {off['samples']} samples: {off['median_ms']:.1f} ms, "
                        f"{1e3 * off['seconds_per_second']:.1f} ms per second of audio "
                        f"(real-time factor {off['rtf']:.3f}), peak memory {_f(off.get('peak_memory_mib'), 1, ' MiB')}."
                    )
                    out.append("")
                rows = [
                    [
                        str(r["buffer"]),
                        f"{r['method']}/{r['engine']}",
                        _f(r["median_ms"]),
                        _f(r["p90_ms"]),
                        _f(r["rtf"], 3),
                        _f(r["cost_vs_offline"], 2, "x"),
                        _f(r["speedup_vs_cached_conv"], 2, "x"),
                        _f(r["speedup_vs_overlap_add"], 2, "x"),
                        _f(r["latency_ms"], 1),
                        _f(r.get("peak_memory_mib"), 1),
                        _f(r["floor_ms"]),
                        _f(100 * r["floor_fraction"], 0, "%"),
                    ]
                    for r in block
                ]
                out += _table(
                    [
                        "buffer",
                        "method/engine",
                        "median ms",
                        "p90 ms",
                        "RTF",
                        "cost vs offline",
                        "speed-up vs cached_conv",
                        "speed-up vs overlap-add",
                        "latency ms",
                        "peak MiB",
                        "floor ms",
                        "floor %",
                    ],
                    rows,
                )
                out.append("")
    return out


def _fits_markdown(results: Dict[str, object]) -> List[str]:
    """Fixed cost per call and cost per sample (1 thread, batch 1)."""
    out: List[str] = []
    fits = [f for f in results.get("fits", []) if f["threads"] == 1 and f["batch"] == 1]
    if fits:
        out.append("### Fixed cost per call (1 thread, batch 1)")
        out.append("")
        out.append(
            "A line through the median time per call against the buffer size: `fixed` is its value at 0 "
            "samples (weights read, per-layer overheads), the slope the cost of each further 1000 samples."
        )
        out.append("")
        out += _table(
            ["model", "method/engine", "fixed ms", "ms per 1000 samples"],
            [
                [f["model"], f"{f['method']}/{f['engine']}", _f(f["fixed_ms"]), _f(f["ms_per_1k_samples"], 3)]
                for f in fits
            ],
        )
        out.append("")
    return out


def _exactness_markdown(results: Dict[str, object]) -> List[str]:
    """The exactness checks."""
    out: List[str] = []
    checks = results.get("exactness", [])
    if checks:
        out.append("### Exactness (float32; bar: max error / offline peak <= 1e-5)")
        out.append("")
        out += _table(
            ["model", "check", "buffer", "shift", "warm-up excluded", "max rel error", "compared", "pass", "note"],
            [
                [
                    c["model"],
                    c["check"],
                    str(c["buffer"]),
                    str(c["delay"]),
                    str(c["warmup"]),
                    _f(c["max_rel_error"], 2) if c["max_rel_error"] is None else f"{c['max_rel_error']:.2e}",
                    str(c["compared"]),
                    "yes" if c["passed"] else "no",
                    c["note"],
                ]
                for c in checks
            ],
        )
        out.append("")
    return out


def _closing_markdown(results: Dict[str, object], plots_prefix: Optional[str]) -> List[str]:
    """How memory was measured, the run's notes, the plots."""
    out: List[str] = []
    memory_note = (
        "Peak memory: extra resident memory while streaming, over the loaded model, measured eager at "
        "1 thread in a child process (peak RSS reset through /proc/self/clear_refs, malloc returning "
        "freed blocks); resolution about 0.5 MiB."
    )
    if results["meta"].get("mode") == "quick":
        memory_note += " Quick mode: no dry run before each configuration, so first uses of a kernel count."
    out.append(memory_note)
    out.append("")
    notes = results.get("notes", [])
    if notes:
        out.append("Notes of this run:")
        out.append("")
        out += [f"- {n}" for n in notes]
        out.append("")
    if plots_prefix is not None:
        for name in results["models"]:
            out.append(f"![real-time factor, {name}]({plots_prefix}rtf_{name}.png)")
            out.append(f"![latency, {name}]({plots_prefix}latency_{name}.png)")
            out.append("")
    return out


def _profile_markdown(profile: Dict[str, object]) -> List[str]:
    out: List[str] = []
    layers = profile["layers"]
    out.append(f"### Profile: streamify eager, {profile['model']}, {profile['buffer']} samples, 1 thread, batch 1")
    out.append("")
    if profile.get("date"):
        out.append(
            f"Profiled {profile['date']}, load average {profile.get('load_average')}; streams primed past their warm-up."
        )
        out.append("")
    out.append(
        f"Call: {layers['call_ms']:.2f} ms without hooks, {layers['call_ms_with_hooks']:.2f} ms with them; "
        f"inside the streaming layers {layers['layers_ms']:.2f} ms, outside them (graph glue: activations, "
        f"adds, slices; validation, output masking; hooks) {layers['glue_ms']:.2f} ms. "
        f"Reading the weights once at the floor's bandwidth (machine floor above): {profile['weights_floor_ms']:.2f} ms."
    )
    out.append("")
    products = profile.get("products_in_sequence")
    if products:
        out.append(
            "The convs' arithmetic alone: each conv's product (as the layer picks it) or generic kernel, in call "
            "order over the model's own weights, nothing else (no caches, windows, graph, activations): "
            + "; ".join(
                f"batch {b}: {p['ms']:.2f} ms"
                + (f" (the frozen model's call, timed alongside: {p['call_ms']:.2f} ms)" if "call_ms" in p else "")
                for b, p in products.items()
            )
            + ". A call cannot beat this with these kernels; the rest of the call is overhead."
        )
        out.append("")
    rows = sorted(layers["layers"], key=lambda r: -r["ms"])[:15]
    out += _table(
        ["layer", "kind", "frames in", "ms per call", "floor ms", "weights MiB", "MMAC"],
        [
            [
                r["layer"],
                r["kind"],
                str(r["frames_in"]),
                _f(r["ms"], 3),
                _f(r.get("floor_ms"), 3),
                _f(r["weight_bytes"] / 2**20, 2),
                _f(r["macs"] / 1e6, 2),
            ]
            for r in rows
        ],
    )
    out.append("")
    ops = profile["ops"]
    out.append(
        f"torch.profiler: {ops['aten_ops_per_call']:.0f} aten ops per call; "
        f"{ops['aten_self_ms']:.2f} ms of self time in them (profiled call {ops['wall_ms_profiled']:.2f} ms, "
        "the profiler's own cost included)."
    )
    out.append("")
    out += _table(
        ["op", "calls per call", "self ms per call"],
        [[o["op"], _f(o["calls_per_call"], 1), _f(o["self_ms"], 3)] for o in ops["top_ops"][:10]],
    )
    out.append("")
    ops4 = profile.get("ops_batch4")
    if ops4:
        out.append(
            f"Batch 4: {ops4['aten_ops_per_call']:.0f} aten ops per call, {ops4['aten_self_ms']:.2f} ms of self time; "
            "top ops: "
            + ", ".join(f"{o['op']} x{o['calls_per_call']:.0f} {o['self_ms']:.2f} ms" for o in ops4["top_ops"][:4])
            + "."
        )
        out.append("")
    return out


def splice(page: Path, generated: str) -> None:
    """Put ``generated`` between the markers of ``page`` (created with the markers if missing)."""
    text = page.read_text() if page.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{BEGIN}\n{generated}\n{END}{tail}")


def write_all(results: Dict[str, object], folder: Path, doc: Optional[Path] = None) -> Dict[str, object]:
    """JSON, plots, ``summary.md`` under ``folder``; the summary also spliced into ``doc`` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    written: Dict[str, object] = {"json": write_json(results, folder / "results.json")}
    try:
        written["plots"] = plot(results, folder)
    except ImportError:
        written["plots"] = []
        results.setdefault("notes", []).append("matplotlib is not installed (pip install matplotlib): no plots")
    summary = markdown(results, plots_prefix="")
    (folder / "summary.md").write_text(summary + "\n")
    written["summary"] = folder / "summary.md"
    if doc is not None:
        import os

        prefix = os.path.relpath(folder, doc.parent).replace(os.sep, "/") + "/"
        splice(doc, markdown(results, plots_prefix=prefix))
        written["doc"] = doc
    return written
