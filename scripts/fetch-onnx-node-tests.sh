#!/usr/bin/env bash
# Fetches the backend node tests that ship inside ONNX 1.22.0's wheel, so the
# `onnx_node_tests` integration test can run ONNX's own conformance cases.
#
# Usage: scripts/fetch-onnx-node-tests.sh [DEST]
#   DEST defaults to $LPUC_ONNX_NODE_TESTS, else target/onnx-node-tests under the
#   repository root. The result is DEST/node/<test>/model.onnx and
#   DEST/node/<test>/test_data_set_0/{input_*,output_*}.pb.
#
# Only pip touches the network. The wheel is pinned by its exact file name and
# sha256, so every machine extracts the same bytes whatever its own platform.
set -euo pipefail

ONNX_VERSION=1.22.0
# The onnx 1.22.0 wheels for CPython on x86_64 Linux are tagged manylinux_2_27/2_28
# (there is no manylinux_2_17 wheel any more); asking for manylinux_2_28 selects it.
WHEEL_NAME="onnx-${ONNX_VERSION}-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
WHEEL_SHA256=1d0a2bdb15eb2b3cb65c438f3423d9620d14fdce32f92380e6bb1b2e09568ef5
PREFIX=onnx/backend/test/data/node
PYTHON=${PYTHON:-python3}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dest=${1:-${LPUC_ONNX_NODE_TESTS:-$root/target/onnx-node-tests}}
marker="$dest/node/.fetched-onnx-$ONNX_VERSION"

if [[ -e "$marker" ]]; then
    echo "ONNX $ONNX_VERSION node tests already in $dest/node ($marker exists); nothing to do."
    exit 0
fi

if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    echo "error: this script needs $PYTHON with pip (set PYTHON to another interpreter)" >&2
    exit 1
fi

mkdir -p "$dest"
# The scratch folder sits inside DEST so the final move is a rename on one file system.
tmp=$(mktemp -d "$dest/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "Downloading onnx==$ONNX_VERSION wheel with pip..."
"$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp --abi cp311 \
    "onnx==$ONNX_VERSION" -d "$tmp/wheel"

wheel="$tmp/wheel/$WHEEL_NAME"
if [[ ! -f "$wheel" ]]; then
    echo "error: pip did not produce $WHEEL_NAME; it saved:" >&2
    ls -l "$tmp/wheel" >&2
    exit 1
fi

if command -v sha256sum >/dev/null 2>&1; then
    actual=$(sha256sum "$wheel" | cut -d' ' -f1)
else
    actual=$("$PYTHON" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$wheel")
fi
if [[ "$actual" != "$WHEEL_SHA256" ]]; then
    echo "error: sha256 mismatch for $WHEEL_NAME" >&2
    echo "  expected $WHEEL_SHA256" >&2
    echo "  actual   $actual" >&2
    exit 1
fi
echo "Verified sha256 $actual ($(wc -c <"$wheel") bytes)."

mkdir -p "$tmp/x"
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$wheel" "$PREFIX/*" -d "$tmp/x"
else
    "$PYTHON" - "$wheel" "$PREFIX/" "$tmp/x" <<'PY'
import sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extractall(out, [n for n in z.namelist() if n.startswith(prefix)])
PY
fi

count=$(find "$tmp/x/$PREFIX" -mindepth 2 -maxdepth 2 -name model.onnx | wc -l)
if [[ "$count" -eq 0 ]]; then
    echo "error: the wheel held no node tests under $PREFIX" >&2
    exit 1
fi
touch "$tmp/x/$PREFIX/.fetched-onnx-$ONNX_VERSION"

# A node/ without the marker is a leftover of an interrupted or older fetch.
rm -rf "$dest/node"
mv "$tmp/x/$PREFIX" "$dest/node"
echo "Extracted $count ONNX $ONNX_VERSION node test folders into $dest/node."
