#!/usr/bin/env bash
# Set up everything latentaudit needs on a fresh machine: the Debian data packages, a
# virtual environment in .venv with PyTorch, and the project (editable) with its test and
# docs extras.  Safe to run again: steps that are done are skipped quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

# -- Debian packages: real MRI volumes (mricron-data), a head CT (invesalius-examples, for
#    the slice bank), Fashion-MNIST, Chromium and its
#    WebDriver for the report's browser tests.
apt_packages=(mricron-data invesalius-examples dataset-fashion-mnist chromium chromium-driver)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else SUDO=none; fi
    if [ "$SUDO" = none ]; then
        echo "setup: cannot install ${missing[*]} (not root, no sudo); tests that need them will skip" >&2
    else
        echo "setup: installing Debian packages: ${missing[*]}"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

# -- Python environment
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip >/dev/null

# PyTorch first, pinned, so that no later step pulls another torch build.  PyPI's
# torchvision does not import beside the CPU torch 2.13.0 file on these machines; the
# pair below does (on aarch64 the CPU pair 2.9.1/0.24.1).
case "$(uname -m)" in
    aarch64|arm64) TORCH=2.9.1; TORCHVISION=0.24.1 ;;
    *) TORCH=2.14.1; TORCHVISION=0.29.1 ;;
esac
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
printf 'torch==%s\ntorchvision==%s\n' "$TORCH" "$TORCHVISION" > "$constraints"
if ! "$VENV/bin/python" -c "import torch, torchvision, sys; sys.exit(not (torch.__version__.split('+')[0] == '$TORCH' and torchvision.__version__.split('+')[0] == '$TORCHVISION'))" 2>/dev/null; then
    echo "setup: installing torch==$TORCH torchvision==$TORCHVISION (a few minutes)"
    $PIP install -q "torch==$TORCH" "torchvision==$TORCHVISION"
fi
echo "setup: installing latentaudit and its test/docs extras"
$PIP install -q -c "$constraints" -e ".[test,docs]"
echo "setup: done ($("$VENV/bin/python" -c 'import torch, latentaudit; print("torch", torch.__version__, "latentaudit", latentaudit.__version__)'))"
