#!/usr/bin/env bash
# Builds roomd's arm64 .deb for Raspberry Pi OS / Debian 12 (bookworm) from a cross-built release
# binary, then checks it: contents, control fields, conffiles, and an install / remove / purge
# into a throwaway root that runs the maintainer scripts.
#
#   bash packaging/deb/build-deb.sh target/aarch64-unknown-linux-gnu/release/roomd [OUTDIR]
#
# Plain dpkg-deb, no cargo-deb: the binary is already built (cross, by tools/cross-aarch64.sh),
# and building cargo-deb from source would cost CI minutes for what forty lines do here.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${1:?usage: build-deb.sh ROOMD_BINARY [OUTDIR]}
OUTDIR=${2:-target/deb}
ARCH=${ROOMD_DEB_ARCH:-arm64}
case $ARCH in arm64) TRIPLE=aarch64-linux-gnu ;; amd64) TRIPLE=x86_64-linux-gnu ;; *) TRIPLE= ;; esac
OBJDUMP=$(command -v "$TRIPLE-objdump" || command -v objdump)
STRIP=$(command -v "$TRIPLE-strip" || command -v strip)

fail() { echo "build-deb: FAILED: $*" >&2; exit 1; }
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
[ -n "$VERSION" ] || fail "no version in Cargo.toml"
VERSION=${ROOMD_DEB_VERSION:-$VERSION}
DEB=$OUTDIR/roomd_${VERSION}_$ARCH.deb
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# --- Depends, from the libraries the binary links (an unknown one fails the build, so a new
# --- library cannot slip in without its package) and the plugins roomd loads at run time.
needed=$("$OBJDUMP" -p "$BIN" | awk '/NEEDED/ {print $2}')
[ -n "$needed" ] || fail "$BIN links no shared libraries? ($OBJDUMP -p)"
glibc=$("$OBJDUMP" -T "$BIN" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
declare -A pkg_of=(
  [libc.so.6]="libc6 (>= $glibc)" [libm.so.6]="libc6 (>= $glibc)"
  [ld-linux-aarch64.so.1]="libc6 (>= $glibc)" [ld-linux-x86-64.so.2]="libc6 (>= $glibc)"
  [libgcc_s.so.1]="libgcc-s1"
  [libglib-2.0.so.0]="libglib2.0-0 (>= 2.74)" [libgobject-2.0.so.0]="libglib2.0-0 (>= 2.74)"
  [libgio-2.0.so.0]="libglib2.0-0 (>= 2.74)" [libgmodule-2.0.so.0]="libglib2.0-0 (>= 2.74)"
  [libgstreamer-1.0.so.0]="libgstreamer1.0-0 (>= 1.22)"
  [libgstbase-1.0.so.0]="libgstreamer1.0-0 (>= 1.22)"
  [libgstapp-1.0.so.0]="libgstreamer-plugins-base1.0-0 (>= 1.22)"
  [libgstaudio-1.0.so.0]="libgstreamer-plugins-base1.0-0 (>= 1.22)"
  [libgstvideo-1.0.so.0]="libgstreamer-plugins-base1.0-0 (>= 1.22)"
  [libgstsdp-1.0.so.0]="libgstreamer-plugins-base1.0-0 (>= 1.22)"
  [libgstpbutils-1.0.so.0]="libgstreamer-plugins-base1.0-0 (>= 1.22)"
  [libgstrtp-1.0.so.0]="libgstreamer-plugins-base1.0-0 (>= 1.22)"
  [libgstwebrtc-1.0.so.0]="libgstreamer-plugins-bad1.0-0 (>= 1.22)"
  [libasound.so.2]="libasound2 (>= 1.2)"
  [libudev.so.1]="libudev1"
)
libdeps=()
for so in $needed; do
  [ -n "${pkg_of[$so]:-}" ] || fail "$BIN links $so: add its Debian package to pkg_of in $0"
  libdeps+=("${pkg_of[$so]}")
done
# What media-check lists: webrtcbin, webrtcdsp, kmssink, h264parse (bad), x264enc (ugly; the Pi 5
# has no H.264 encoder block), v4l2src/v4l2h264enc and RTP (good), opus, compositor, audiomixer,
# (textoverlay is the pango plugin, in gstreamer1.0-x on Debian), nicesrc (nice), alsasrc (alsa), avdec_h264 (libav).
plugins=(gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-alsa gstreamer1.0-libav gstreamer1.0-x)
DEPENDS=$(printf '%s\n' "${libdeps[@]}" | sort -u | paste -sd, | sed 's/,/, /g')
DEPENDS="$DEPENDS, $(printf '%s, ' "${plugins[@]}")systemd (>= 250)"

# --- the tree
STAGE=$(mktemp -d); trap 'rm -rf "$STAGE"' EXIT
P=$STAGE/root
install -D -m 0755 "$BIN" "$P/usr/bin/roomd"
"$STRIP" --remove-section=.comment --remove-section=.note "$P/usr/bin/roomd"
install -D -m 0644 systemd/roomd.service "$P/usr/lib/systemd/system/roomd.service"
install -D -m 0644 systemd/roomd.sysusers "$P/usr/lib/sysusers.d/roomd.conf"
install -D -m 0644 board/raspberrypi/roomd.toml "$P/etc/roomd/roomd.toml"
install -D -m 0644 README.md "$P/usr/share/doc/roomd/README.md"
cat > "$P/usr/share/doc/roomd/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: roomd

Files: *
Copyright: the roomd authors
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
{
  echo "roomd ($VERSION) bookworm; urgency=medium"
  echo
  echo "  * Built from $(git describe --always --dirty 2>/dev/null || echo 'a source tree')."
  echo
  echo " -- roomd maintainers <roomd@localhost>  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n > "$P/usr/share/doc/roomd/changelog.gz"
chmod 0644 "$P/usr/share/doc/roomd/"*

mkdir -p "$P/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$P/DEBIAN/$s"; done
echo /etc/roomd/roomd.toml > "$P/DEBIAN/conffiles"
cat > "$P/DEBIAN/control" <<EOF
Package: roomd
Version: $VERSION
Architecture: $ARCH
Maintainer: roomd maintainers <roomd@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$P" | cut -f1)
Depends: $DEPENDS
Recommends: gstreamer1.0-libcamera
Section: net
Priority: optional
Description: Matrix conference-room appliance
 roomd is the firmware of a wall-mounted Matrix conference-room device (a
 Raspberry Pi 4 or 5 with a camera, microphone, speaker, HDMI display, buttons
 and LEDs). It logs in as the meeting room's own Matrix device, joins the
 room's calls by itself and sends the camera and microphone into the call.
 .
 Configure /etc/roomd/roomd.toml and the login secret, then
 systemctl enable --now roomd.
EOF
find "$P" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUTDIR"
dpkg-deb --root-owner-group -Zxz --build "$P" "$DEB" >/dev/null
echo "built $DEB ($(du -h "$DEB" | cut -f1))"

# --- what is in it
echo "--- dpkg-deb --info"; dpkg-deb --info "$DEB"
echo "--- dpkg-deb --contents"; dpkg-deb --contents "$DEB" | tee "$STAGE/contents"
echo "--- conffiles"; dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles | tee "$STAGE/conffiles"
[ "$(dpkg-deb -f "$DEB" Architecture)" = "$ARCH" ] || fail "Architecture is not $ARCH"
[ "$(dpkg-deb -f "$DEB" Package)" = roomd ] || fail "Package is not roomd"
for f in ./usr/bin/roomd ./usr/lib/systemd/system/roomd.service ./usr/lib/sysusers.d/roomd.conf \
         ./etc/roomd/roomd.toml ./usr/share/doc/roomd/copyright; do
  awk '{print $6}' "$STAGE/contents" | grep -qx "$f" || fail "$f is not in the package"
done
awk '$6 == "./usr/bin/roomd" && $1 == "-rwxr-xr-x" && $2 == "root/root" {f=1} END {exit !f}' \
  "$STAGE/contents" || fail "/usr/bin/roomd is not root-owned 0755"
grep -qx /etc/roomd/roomd.toml "$STAGE/conffiles" || fail "/etc/roomd/roomd.toml is not a conffile"
for d in "${plugins[@]}" libgstreamer-plugins-bad1.0-0 libasound2; do
  dpkg-deb -f "$DEB" Depends | grep -q "$d" || fail "Depends lacks $d"
done

# --- install, remove and purge in a throwaway root (maintainer scripts run with DPKG_ROOT set)
R=$STAGE/instroot
mkdir -p "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/info" "$R/etc"
: > "$R/var/lib/dpkg/status"
dpkgr() {
  dpkg --root="$R" --force-script-chrootless --force-depends --force-architecture \
    --force-not-root --log=/dev/null "$@"
}
echo "--- dpkg --root $R --install"
dpkgr --install "$DEB"
[ -x "$R/usr/bin/roomd" ] || fail "install: no /usr/bin/roomd"
grep -q '^roomd:.*:/var/lib/roomd:' "$R/etc/passwd" || fail "install: postinst did not create the roomd user"
grep -q '^video:.*roomd' "$R/etc/group" || fail "install: roomd is not in the video group"
dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Conffiles}\n' roomd | grep -q /etc/roomd/roomd.toml \
  || fail "install: dpkg did not register the conffile"
mkdir -p "$R/var/lib/roomd"; echo session > "$R/var/lib/roomd/session.json"
echo "--- dpkg --remove"
dpkgr --remove roomd
[ ! -e "$R/usr/bin/roomd" ] || fail "remove: /usr/bin/roomd is still there"
[ -f "$R/etc/roomd/roomd.toml" ] || fail "remove: the conffile was deleted"
[ -f "$R/var/lib/roomd/session.json" ] || fail "remove: /var/lib/roomd was deleted"
echo "--- dpkg --purge"
dpkgr --purge roomd
[ ! -e "$R/var/lib/roomd" ] || fail "purge: /var/lib/roomd is still there"
[ ! -e "$R/etc/roomd" ] || fail "purge: /etc/roomd is still there"
echo "package checks passed: $DEB"
