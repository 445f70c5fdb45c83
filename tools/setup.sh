#!/usr/bin/env bash
# Installs what roomd's build, tests and demo need on a Debian 12 machine. Idempotent: a second
# run checks and returns quickly. Everything besides Debian packages goes under .testenv/.
set -euo pipefail
cd "$(dirname "$0")/.."

SYNAPSE_VERSION=1.163.2
DEBS=(
  pkg-config libclang-dev libssl-dev libsqlite3-dev libasound2-dev libudev-dev libsystemd-dev
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-alsa gstreamer1.0-libav gstreamer1.0-x
  gstreamer1.0-tools python3-venv systemd chromium
)

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi

venv=.testenv/synapse
if ! "$venv/bin/python" -c "import synapse, sys; sys.exit(not synapse.__version__.startswith('$SYNAPSE_VERSION'))" 2>/dev/null; then
  echo "setup: installing Synapse $SYNAPSE_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "matrix-synapse==$SYNAPSE_VERSION"
fi

# oelint-adv, the bitbake recipe linter tests/yocto_layer.rs runs over yocto/meta-roomd.
OELINT_VERSION=9.11.2
lint=.testenv/oelint
if ! "$lint/bin/oelint-adv" --version 2>/dev/null | grep -qx "oelint-adv $OELINT_VERSION"; then
  echo "setup: installing oelint-adv $OELINT_VERSION into $lint"
  python3 -m venv "$lint"
  "$lint/bin/pip" install -q --disable-pip-version-check "oelint-adv==$OELINT_VERSION"
fi

# The browser visitor (testbed/browser): matrix-js-sdk, livekit-client and playwright-core from
# package-lock.json, and the page bundles. Node.js 20 or later is needed (playwright-core);
# matrix-js-sdk asks for 22 in its engines, but only its browser bundle is used here, so that is
# not enforced.
browser=testbed/browser
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "setup: Node.js 20 or later is needed for the browser visitor (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
lock_sum=$(sha256sum "$browser/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$browser/node_modules/.roomd-lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
  echo "setup: installing the browser visitor's npm packages into $browser/node_modules"
  (cd "$browser" && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" > "$browser/node_modules/.roomd-lock-sum"
  rm -f "$browser/dist/page.bundle.js" "$browser/dist/livekit.bundle.js"
fi
# Two page bundles: page.js (matrix-js-sdk) and livekit.js (livekit-client), built together.
rebuild=
for name in page livekit; do
  bundle="$browser/dist/$name.bundle.js"
  if [ ! -s "$bundle" ] || [ "$browser/$name.js" -nt "$bundle" ] || [ "$browser/package.json" -nt "$bundle" ]; then
    rebuild=1
  fi
done
if [ -n "$rebuild" ]; then
  echo "setup: building $browser/dist/{page,livekit}.bundle.js"
  (cd "$browser" && npm run --silent build)
fi
echo "setup: ready (Synapse $SYNAPSE_VERSION in $venv, oelint-adv in $lint, browser visitor in $browser)"
