#!/usr/bin/env bash
# Build the real nn~ external for PureData (Linux) from its source against the torch of the active
# Python environment (CPU), downloading nothing. See docs/nn_tilde_build.md.
#
#   benchmarks/build_nn_tilde.sh NN_TILDE_SOURCE BUILD_DIR [JOBS]
#
# NN_TILDE_SOURCE: a checkout of https://github.com/acids-ircam/nn_tilde (submodules not needed).
# It is copied to BUILD_DIR/nn_tilde (7 MB) and three CMake edits are made on the copy:
#   * libtorch is found with find_package(Torch) through CMAKE_PREFIX_PATH (torch.utils.cmake_prefix_path)
#     instead of cmake/add_torch.cmake, which downloads a libtorch;
#   * the json submodule is replaced by Debian's nlohmann-json3-dev (find_package(nlohmann_json 3 GLOBAL));
#   * libcurl is Debian's (find_package(CURL)) instead of a conda environment's; the Max-only file copies go.
# Needs: cmake >= 3.24, g++, Debian packages puredata-dev libcurl4-openssl-dev nlohmann-json3-dev.
# The external lands in BUILD_DIR/build/frontend/puredata/nn_tilde/nn~.pd_linux (its RUNPATH holds the
# torch library folder); pass that folder to benchmarks/nn_tilde_pd.py (--nn-dir or NN_TILDE_DIR).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 NN_TILDE_SOURCE BUILD_DIR [JOBS]" >&2
    exit 2
fi
source_dir=$1
build_dir=$2
jobs=${3:-2}
python=${PYTHON:-python}
torch_prefix=$("$python" -c "import torch.utils; print(torch.utils.cmake_prefix_path)")
pd_include=${PUREDATA_INCLUDE_DIR:-/usr/include/pd}
if [ ! -f "$source_dir/src/CMakeLists.txt" ]; then
    echo "error: $source_dir is not an nn_tilde checkout (no src/CMakeLists.txt)" >&2
    exit 2
fi
if [ ! -f "$pd_include/m_pd.h" ]; then
    echo "error: no m_pd.h in $pd_include: apt-get install puredata-dev, or set PUREDATA_INCLUDE_DIR" >&2
    exit 2
fi
mkdir -p "$build_dir"
rm -rf "$build_dir/nn_tilde"
mkdir "$build_dir/nn_tilde"
tar -C "$source_dir" --exclude=.git -cf - . | tar -C "$build_dir/nn_tilde" -xf -
"$python" - "$build_dir/nn_tilde/src" <<'EOF'
import re
import sys
from pathlib import Path

root = Path(sys.argv[1])
top = root / "CMakeLists.txt"
text = top.read_text()
text = re.sub(r'configure_file\(\s*"\$\{CMAKE_SOURCE_DIR\}/../install/max-linker-flags.txt".*?\)\n', "", text, flags=re.S)
text = re.sub(r'message\("Copying \$\{CMAKE_SOURCE_DIR\}/../install/MaxAPI.lib".*?\)\n', "", text, count=1, flags=re.S)
text = re.sub(r"configure_file\(\s*\"\$\{CMAKE_SOURCE_DIR\}/../install/MaxAPI.lib\".*?\)\n", "", text, flags=re.S)
text = re.sub(r"include\(\$\{CMAKE_SOURCE_DIR\}/cmake/add_torch.cmake\)\n.*?find_package\(Torch REQUIRED[^)]*\)", "find_package(Torch REQUIRED)", text, flags=re.S)
text = text.replace("add_subdirectory(json)", "find_package(nlohmann_json 3 REQUIRED GLOBAL)")
top.write_text(text)
pd = root / "frontend/puredata/nn_tilde/CMakeLists.txt"
text = pd.read_text()
text, count = re.subn(
    r"set\(CONDA_ENV_PATH.*?target_link_libraries\(nn PRIVATE \$\{CURL_LIBRARY\}\)",
    "find_package(CURL REQUIRED)\ntarget_link_libraries(nn PRIVATE CURL::libcurl)",
    text,
    flags=re.S,
)
pd.write_text(text)
for name, needle in ((top, "find_package(Torch REQUIRED)"), (top, "nlohmann_json 3"), (pd, "CURL::libcurl")):
    if needle not in name.read_text():
        sys.exit(f"error: could not edit {name} ({needle!r} missing): this nn_tilde version differs from the one documented")
EOF
cmake -S "$build_dir/nn_tilde/src" -B "$build_dir/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix" -DPUREDATA_INCLUDE_DIR="$pd_include"
cmake --build "$build_dir/build" -j "$jobs"
echo "nn~ built: $build_dir/build/frontend/puredata/nn_tilde/nn~.pd_linux"
