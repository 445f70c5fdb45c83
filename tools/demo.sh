#!/usr/bin/env bash
# The no-hardware demo: a local Synapse, roomd on test sources, a visitor in Chromium who calls.
# It measures, saves a PNG and stops everything; `--stay` keeps the call going until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cargo build --quiet --bin roomd --example demo
exec "${CARGO_TARGET_DIR:-target}/debug/examples/demo" "$@"
