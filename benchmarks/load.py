"""What loading an exported nn~ file costs a live set: load, ``get_methods()``, first calls, memory, file size.

Runs the libtorch host of the tests (``tests/export/cpp/host.cpp``, which feeds a file the way nn~
does) on each file, alternating the files, and prints wall and CPU time of ``torch::jit::load`` and of
``get_methods()`` (nn~ calls it on its audio thread when it creates the object), every call's time and
the process's peak resident memory. CPU times are comparable on a busy machine; wall times are not.

    cmake -S tests/export/cpp -B build/nn_host -DCMAKE_BUILD_TYPE=Release \\
        -DCMAKE_PREFIX_PATH=$(python -c "import torch; print(torch.utils.cmake_prefix_path)")
    cmake --build build/nn_host
    python benchmarks/load.py --host build/nn_host/nn_host --export v2 --out build/load   # exports the v2 preset
    python benchmarks/load.py --host build/nn_host/nn_host build/load/v2.ts other.ts      # files at hand
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def export_preset(name: str, folder: Path) -> Path:
    """Export the preset ``name`` of the package's RAVE (encode, decode, forward; weight norms folded)."""
    import torch

    from streamify.export import export_nn_tilde
    from streamify.models.rave import fold_weight_norm, rave

    torch.manual_seed(0)
    model = fold_weight_norm(rave(name)).eval()
    model.use_noise = False
    path = folder / f"{name}.ts"
    folder.mkdir(parents=True, exist_ok=True)
    example = torch.randn(1, 1, 8 * model.ratio)
    export_nn_tilde(model, path, example, methods=("encode", "decode", "forward"), sample_rate=model.config.sample_rate)
    return path


def tensor_bytes(path: Path) -> int:
    """Bytes of tensor data in a TorchScript archive (one record per storage)."""
    with zipfile.ZipFile(path) as archive:
        return sum(item.file_size for item in archive.infolist() if "/data/" in item.filename)


def run_host(host: Path, path: Path, buffer: int, calls: int) -> Dict[str, object]:
    """One fresh host process: load, get_methods, ``calls`` calls of forward; what it printed, parsed."""
    with tempfile.TemporaryDirectory() as scratch:
        signal = Path(scratch) / "in.f32"
        (np.random.default_rng(0).standard_normal(buffer * calls) * 0.1).astype(np.float32).tofile(signal)
        command = [str(host), str(path), "forward", str(buffer), "1", str(signal), str(Path(scratch) / "out.f32")]
        out = subprocess.run(command, capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1"}).stdout
    found: Dict[str, object] = {}
    for key in ("load_ms", "get_methods_ms"):
        wall, cpu = re.search(rf"^{key}: ([\d.]+) \(cpu ([\d.]+)\)", out, re.M).groups()
        found[key] = (float(wall), float(cpu))
    found["call_ms"] = [float(v) for v in re.search(r"^call_ms:(.*)$", out, re.M).group(1).split()]
    found["peak_rss_mb"] = int(re.search(r"^peak_rss_kb: (\d+)", out, re.M).group(1)) / 1024
    return found


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path, help="exported .ts files")
    parser.add_argument("--host", type=Path, required=True, help="the built tests/export/cpp host (nn_host)")
    parser.add_argument("--export", help="export this preset of the package's RAVE first (small, v2)")
    parser.add_argument("--out", type=Path, default=Path("build/load"), help="where --export writes")
    parser.add_argument("--buffer", type=int, default=2048)
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2, help="runs per file, alternated")
    args = parser.parse_args(argv)
    files = list(args.files) + ([export_preset(args.export, args.out)] if args.export else [])
    for round_ in range(args.rounds):
        for path in files:
            found = run_host(args.host, path, args.buffer, args.calls)
            size, weights = path.stat().st_size / 1e6, tensor_bytes(path) / 1e6
            calls = ", ".join(f"{v:.0f}" for v in found["call_ms"][:3])
            print(
                f"[{round_}] {path.name}: {size:.1f} MB ({weights:.1f} MB of tensors) | load {found['load_ms'][0]:.0f} ms "
                f"(cpu {found['load_ms'][1]:.0f}) | get_methods {found['get_methods_ms'][0]:.0f} ms "
                f"(cpu {found['get_methods_ms'][1]:.0f}) | calls 1-3 {calls} ms, median "
                f"{float(np.median(found['call_ms'])):.1f} | peak {found['peak_rss_mb']:.0f} MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
