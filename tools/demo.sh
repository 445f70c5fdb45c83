#!/usr/bin/env bash
# The no-hardware demo: a local Synapse, roomd on test sources, a visitor in Chromium who calls.
# It measures, saves a PNG and stops everything; `--stay` keeps the call going until Ctrl-C, `-v`
# shows roomd's debug log and the visitor's console too.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
target="${CARGO_TARGET_DIR:-target}"
if [ ! -x "$target/debug/roomd" ] || [ ! -x "$target/debug/examples/demo" ]; then
  echo "demo: building roomd and the demo (the first build takes about 10 minutes on 2 cores)"
fi
# Cargo's own progress: every crate on a first build, one line when nothing changed.
cargo build --bin roomd --example demo
exec "$target/debug/examples/demo" "$@"
