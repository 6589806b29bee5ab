"""The delays a Neutone FX file reports to the DAW, per DAW rate and buffer size, for docs/daw.md.

    streamify export pretrained -o pretrained.nm
    python benchmarks/daw_latency.py pretrained.nm --out docs

Loads the file with neutone-sdk (as the plugin does), sets each DAW rate and buffer size and reads
``calc_buffering_delay_samples`` and ``calc_model_delay_samples``; nothing is streamed (the figures
are the plugin's arithmetic, checked against streamed audio by tests/export/test_export_neutone.py).
Writes ``OUT/daw-latency.json`` and ``OUT/daw-latency.png`` (stacked bars: buffering delay, model
delay, in ms) and prints a Markdown table. Needs the ``neutone`` extra and matplotlib.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

SIZES = (64, 128, 256, 512, 1000, 1024, 2048, 4096)


def delays(path: Path, rates) -> dict:
    """``{rate: {n: {"buffering": samples, "model": samples, "model_buffer": samples}}}`` at the DAW's rate."""
    from neutone_sdk.utils import load_neutone_model

    module, meta = load_neutone_model(str(path))
    table = {}
    for rate in rates:
        table[rate] = {}
        for n in SIZES:
            module.set_daw_sample_rate_and_buffer_size(rate, n)
            table[rate][n] = {
                "buffering": int(module.calc_buffering_delay_samples()),
                "model": int(module.calc_model_delay_samples()),
                "model_buffer": int(module.model_bs),
                "resampling": bool(module.is_resampling()),
            }
    return {"model": meta["model_name"], "native_sample_rates": meta["native_sample_rates"], "delays": table}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = list(result["delays"])
    fig, axes = plt.subplots(1, len(rates), figsize=(4.2 * len(rates), 3.6), sharey=True)
    for ax, rate in zip(axes if len(rates) > 1 else [axes], rates):
        rows = result["delays"][rate]
        labels = [str(n) for n in rows]
        buffering = [1000.0 * r["buffering"] / rate for r in rows.values()]
        model = [1000.0 * r["model"] / rate for r in rows.values()]
        ax.bar(labels, model, color="#4c72b0", label="model delay (the stream's latency)")
        ax.bar(labels, buffering, bottom=model, color="#dd8452", label="buffering delay (queue to a native size)")
        native = rate in result["native_sample_rates"]
        ax.set_title(f"DAW at {rate} Hz" + (" (native)" if native else " (resampled)"), fontsize=10)
        ax.set_xlabel("DAW buffer size (samples)")
        ax.tick_params(axis="x", labelrotation=45)
    (axes[0] if len(rates) > 1 else axes).set_ylabel("delay reported to the DAW (ms)")
    (axes[0] if len(rates) > 1 else axes).legend(fontsize=8, loc="upper left")
    fig.suptitle(f"{result['model']}: what Neutone FX reports (buffering + model delay)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    lines = [
        "| DAW rate | buffer | model buffer | buffering delay | model delay | total |",
        "|---|---|---|---|---|---|",
    ]
    for rate, rows in result["delays"].items():
        for n, r in rows.items():
            total = r["buffering"] + r["model"]
            lines.append(
                f"| {rate} | {n} | {r['model_buffer']} | {r['buffering']} | {r['model']} | "
                f"{total} ({1000.0 * total / rate:.1f} ms) |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a .nm file (streamify export MODEL -o model.nm)")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--rates", default="44100,48000", help="DAW rates (Hz), comma-separated")
    args = parser.parse_args()
    result = delays(args.model, [int(r) for r in args.rates.split(",")])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "daw-latency.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "daw-latency.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
