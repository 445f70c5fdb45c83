#!/usr/bin/env bash
# roomd for the Raspberry Pi 4/5 (aarch64-unknown-linux-gnu), on a Debian 12 amd64 machine:
# cross-builds the release binary against an arm64 Debian 12 sysroot, runs the core's unit tests
# and the binary itself under qemu-aarch64 as a Cortex-A72, checks the glibc it needs, and builds
# the arm64 .deb (packaging/deb/build-deb.sh). Run as root (or with sudo) after tools/setup.sh.
#
# Nothing arm64 is installed on the host: bookworm's arm64 -dev packages cannot be co-installed
# with the amd64 ones tools/setup.sh installs (libgstreamer-plugins-base1.0-dev is not
# Multi-Arch: same), so the arm64 packages are downloaded by a private apt root and unpacked into
# a sysroot under .testenv/aarch64/, kept for the next run (rebuilt when the package list
# changes). Cross build output goes to $CARGO_TARGET_DIR (default target/).
#
# Two builds:
#   tools/cross-aarch64.sh            CI: one dev-profile build (dependencies at opt-level 1) of
#                                     the lib's unit tests and the binary together, so features
#                                     are unified once and nothing is built twice; the binary it
#                                     checks and packages is that dev build (a test package).
#   tools/cross-aarch64.sh --release  the package to ship: `cargo build --release`, then the
#                                     unit tests in the release profile (a second build of the
#                                     shared dependencies, whose features differ: dev-dependencies).
#
# Exit status: 0 when every check passed, or when the Rust aarch64 target cannot be installed
# (then a banner says the step was SKIPPED and why); non-zero on any other failure.
set -euo pipefail
cd "$(dirname "$0")/.."
RELEASE=false
case "${1:-}" in
  --release) RELEASE=true ;;
  "") ;;
  *) echo "usage: $0 [--release]" >&2; exit 2 ;;
esac

TARGET=aarch64-unknown-linux-gnu
MAX_GLIBC=2.36                  # Debian 12 / Raspberry Pi OS bookworm
QEMU_CPU=cortex-a72             # Raspberry Pi 4 (the Pi 5's Cortex-A76 runs the same code)
export QEMU_CPU
X=$PWD/.testenv/aarch64
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if $RELEASE; then PROFILE=release; else PROFILE=debug; fi
OUT=$CARGO_TARGET_DIR/$TARGET/$PROFILE

t0=$SECONDS; tp=$SECONDS
phase() {
  local now=$SECONDS
  [ -z "${PHASE:-}" ] || printf '[cross-aarch64] done: %s (%ds)\n' "$PHASE" $((now - tp))
  PHASE=$1; tp=$now
  [ -z "$PHASE" ] || printf '\n[cross-aarch64] === %s ===\n' "$PHASE"
}
fail() { echo "[cross-aarch64] FAILED: $*" >&2; exit 1; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

skipped() {
  cat >&2 <<EOF

################################################################################
################################################################################
####                                                                        ####
####   aarch64 STEP SKIPPED: the Raspberry Pi build was NOT built or tested  ####
####                                                                        ####
################################################################################
################################################################################
  why: $*
  Nothing below was checked: cross build, unit tests under qemu, check-config,
  media-check, glibc versions, the .deb. Fix the Rust toolchain and run
  bash tools/cross-aarch64.sh
################################################################################

EOF
  exit 0
}

# ---------------------------------------------------------------------------------------------
phase "host packages (cross gcc, qemu-user)"
HOST_DEBS=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
missing=()
for p in "${HOST_DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_if_needed apt-get update -q
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi
QEMU=$(command -v qemu-aarch64-static || command -v qemu-aarch64) || fail "no qemu-aarch64"
$QEMU --version | head -1

# ---------------------------------------------------------------------------------------------
phase "rust target $TARGET"
command -v rustup >/dev/null || skipped "rustup is not installed, so the $TARGET standard library cannot be added"
if ! rustup target list --installed | grep -qx "$TARGET"; then
  if ! err=$(rustup target add "$TARGET" 2>&1); then
    skipped "\`rustup target add $TARGET\` failed: $(echo "$err" | tail -3 | tr '\n' ' ')"
  fi
fi
rustup target list --installed | grep -qx "$TARGET" \
  || skipped "rustup does not list $TARGET as installed after \`rustup target add\`"

# ---------------------------------------------------------------------------------------------
phase "arm64 Debian 12 sysroot"
# Headers and .so links for linking, plus the GStreamer plugins and ALSA data that media-check
# and the tests load at run time (the same plugins the .deb depends on).
SYSROOT_DEBS="libc6-dev linux-libc-dev libgcc-12-dev libgstreamer1.0-dev
 libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev libasound2-dev libudev-dev
 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
 gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-alsa gstreamer1.0-libav gstreamer1.0-x"
R=$X/aptroot; S=$X/sysroot
stamp=$(printf '%s\n' "$SYSROOT_DEBS" "bookworm v2" | sha256sum | cut -c1-16)
if [ "$(cat "$S/.roomd-sysroot" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$S"
  mkdir -p "$R"/etc/apt/sources.list.d "$R"/etc/apt/preferences.d "$R"/etc/apt/apt.conf.d \
    "$R"/var/lib/apt/lists/partial "$R"/var/cache/apt/archives/partial "$R"/var/lib/dpkg "$R"/var/log/apt
  : > "$R"/var/lib/dpkg/status
  cat > "$R"/etc/apt/sources.list.d/debian.sources <<EOF
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  cat > "$R"/apt.conf <<EOF
Dir "$R/";
Dir::State::status "$R/var/lib/dpkg/status";
Dir::Etc::TrustedParts "/etc/apt/trusted.gpg.d/";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
APT::Sandbox::User "root";
Debug::NoLocking "true";
EOF
  # shellcheck disable=SC2086
  APT_CONFIG=$R/apt.conf apt-get -qq update
  # shellcheck disable=SC2086
  APT_CONFIG=$R/apt.conf apt-get -qq -y install --download-only $SYSROOT_DEBS
  mkdir -p "$S"/usr/lib "$S"/usr/bin "$S"/usr/sbin
  ln -s usr/lib "$S"/lib; ln -s usr/bin "$S"/bin; ln -s usr/sbin "$S"/sbin
  n=0
  for d in "$R"/var/cache/apt/archives/*.deb; do
    dpkg-deb --fsys-tarfile "$d" | tar -x --keep-directory-symlink -C "$S"; n=$((n + 1))
  done
  # Absolute symlinks (libz.so -> /lib/aarch64-linux-gnu/libz.so.1) would point into the host.
  find "$S" -type l -lname '/*' | while read -r l; do
    ln -sfn "$(realpath -m --relative-to="$(dirname "$l")" "$S$(readlink "$l")")" "$l"
  done
  # Links that postinst scripts make with update-alternatives (libav's plugin needs libblas.so.3).
  for a in blas lapack; do
    ln -sfn "$a/lib$a.so.3" "$S/usr/lib/aarch64-linux-gnu/lib$a.so.3"
  done
  # The downloaded .debs are only needed again when the list changes.
  rm -f "$R"/var/cache/apt/archives/*.deb
  echo "$stamp" > "$S/.roomd-sysroot"
  echo "sysroot: $n packages unpacked, $(du -sh "$S" | cut -f1)"
else
  echo "sysroot: cached in $S"
fi

# The cross environment (shared/notes/aarch64/cross-env.sh).
T=aarch64_unknown_linux_gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$S"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU -L $S"
export CC_$T=aarch64-linux-gnu-gcc AR_$T=aarch64-linux-gnu-ar CFLAGS_$T="--sysroot=$S"
export PKG_CONFIG_ALLOW_CROSS=1 PKG_CONFIG_SYSROOT_DIR_$T="$S"
export PKG_CONFIG_LIBDIR_$T="$S/usr/lib/aarch64-linux-gnu/pkgconfig:$S/usr/share/pkgconfig"
export BINDGEN_EXTRA_CLANG_ARGS_$T="--target=$TARGET --sysroot=$S"
# Under qemu-user GStreamer cannot exec the arm64 gst-plugin-scanner: scan in-process, into a
# registry of our own. -L makes /usr/lib/aarch64-linux-gnu/gstreamer-1.0 the sysroot's.
export GST_REGISTRY_FORK=no GST_REGISTRY=$X/gst-registry-aarch64.bin
run_arm() { "$QEMU" -L "$S" "$@"; }

# ---------------------------------------------------------------------------------------------
if $RELEASE; then
  phase "cargo build --release --target $TARGET"
  cargo build --locked --release --target "$TARGET" --bin roomd
  TEST_ARGS=(--release)
else
  # An integration test target makes cargo build the binary too, in the same unified build as
  # the lib's tests; that test itself is not run (it would need binfmt to start roomd).
  phase "cargo test --no-run --target $TARGET --lib --test config_check (builds the binary too)"
  # Dependencies unoptimised and without debug info: the core's tests do not need their speed,
  # and this halves the cross build's time and disk.
  CROSS_CONFIG=(--config 'profile.dev.package."*".opt-level=0' --config 'profile.dev.debug=false')
  cargo test --locked "${CROSS_CONFIG[@]}" --target "$TARGET" --lib --test config_check --no-run
  TEST_ARGS=("${CROSS_CONFIG[@]}")
fi
BIN=$OUT/roomd
file "$BIN" | grep -q 'ARM aarch64' || fail "$BIN is not an aarch64 binary: $(file "$BIN")"
ls -l "$BIN"

# ---------------------------------------------------------------------------------------------
phase "unit tests under qemu ($QEMU_CPU): cargo test --lib ${TEST_ARGS[*]:-}"
G_DEBUG=fatal-criticals cargo test --locked "${TEST_ARGS[@]}" --target "$TARGET" --lib

# ---------------------------------------------------------------------------------------------
phase "the binary under qemu ($QEMU_CPU): check-config, media-check"
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
expect() { # expect STATUS NAME -- CMD...: run CMD, show its output, fail unless it exits STATUS
  local want=$1 name=$2; shift 3
  local got=0
  "$@" > "$W/$name.out" 2>&1 || got=$?
  sed 's/^/    /' "$W/$name.out"
  [ "$got" -eq "$want" ] || fail "$name: exit status $got, expected $want"
  echo "  ok: $name exits $want"
}
expect_text() { grep -qF -- "$2" "$W/$1.out" || fail "$1: output lacks \"$2\""; }

expect 0 version -- run_arm "$BIN" --version
expect_text version "roomd "
# The board's config is valid (its credential is not in /etc/credstore here: a warning only).
expect 0 board-check-config -- run_arm "$BIN" check-config board/raspberrypi/roomd.toml
expect_text board-check-config "board/raspberrypi/roomd.toml: OK:"
# A broken config is refused with the position of the problem and status 2.
printf '[matrix]\nhomeserver = "ftp://matrix.example.org"\nuser_id = "meeting-room"\n' > "$W/bad.toml"
expect 2 bad-check-config -- run_arm "$BIN" check-config "$W/bad.toml"
expect_text bad-check-config "bad.toml:2:"
# On the board's config under emulation there is no camera, sound card or display: media-check
# must say so and exit 1 (not crash, not pass), while GStreamer itself and the encoders are fine.
expect 1 board-media-check -- run_arm "$BIN" --config board/raspberrypi/roomd.toml media-check
expect_text board-media-check "microphone \"default\" cannot be opened"
if grep -q "GStreamer element .* is missing" "$W/board-media-check.out"; then
  grep "is missing" "$W/board-media-check.out" | grep -v 'kmssink\|libcamerasrc' \
    && fail "board-media-check: GStreamer elements missing from the arm64 plugin packages"
fi
# With test sources everything roomd needs for a call is there and an H.264 encoder really
# encodes (x264enc: qemu has no V4L2 encoder device), so media-check passes.
cat > "$W/test-sources.toml" <<'EOF'
[camera]
source = "test"
[microphone]
source = "test"
[speaker]
sink = "null"
[display]
sink = "none"
EOF
expect 0 test-media-check -- run_arm "$BIN" --config "$W/test-sources.toml" media-check
expect_text test-media-check "chosen: x264enc"
expect_text test-media-check "OK: the configured devices can work"

# ---------------------------------------------------------------------------------------------
phase "glibc symbol versions (at most GLIBC_$MAX_GLIBC)"
newest=$(aarch64-linux-gnu-objdump -T "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' \
  | sort -uV | tail -1)
[ -n "$newest" ] || fail "no GLIBC_ versions found in $BIN"
echo "newest glibc symbol version needed: GLIBC_$newest"
if [ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -1)" != "$MAX_GLIBC" ]; then
  aarch64-linux-gnu-objdump -T "$BIN" | grep "GLIBC_$newest" | head >&2
  fail "$BIN needs GLIBC_$newest, newer than Debian 12's $MAX_GLIBC"
fi
echo "shared libraries: $(aarch64-linux-gnu-objdump -p "$BIN" | awk '/NEEDED/ {print $2}' | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------
phase "arm64 .deb"
bash packaging/deb/build-deb.sh "$BIN" "$CARGO_TARGET_DIR/deb"

phase ""
printf '[cross-aarch64] all passed in %ds\n' $((SECONDS - t0))
