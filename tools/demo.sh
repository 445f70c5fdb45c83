#!/usr/bin/env bash
# The no-hardware demo: a local Synapse, a visitor and their meeting room, roomd on test sources.
# Ctrl-C stops it. `--until-ready` stops once roomd is in service.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cargo build --quiet --bin roomd --example demo
exec "${CARGO_TARGET_DIR:-target}/debug/examples/demo" "$@"
