#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine: installs what it needs, then runs every
# test against real parts (Synapse on loopback, systemd's own analysers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
# A GStreamer critical is a bug in how roomd drives it: fail the test that hits one.
export G_DEBUG=fatal-criticals
cargo test --workspace --all-targets "$@"
