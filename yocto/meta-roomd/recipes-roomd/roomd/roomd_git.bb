SUMMARY = "Matrix conference-room appliance"
DESCRIPTION = "roomd logs in to Matrix as a meeting room's own device, joins the \
               room's calls by itself, sends the camera and microphone into the call \
               and plays it on the speaker and the HDMI display."
HOMEPAGE = "https://spec.matrix.org/latest/client-server-api/#voice-over-ip"
SECTION = "multimedia"
CVE_PRODUCT = "roomd"
# roomd itself; the crates compiled into it carry their own (permissive) licenses, listed in
# Cargo.lock's packages.
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://Cargo.toml;beginline=7;endline=7;md5=2507bd5f0713f05419cd2f22fa06fe62"

# gstreamer-rs (-sys crates through pkg-config), alsa-sys, and bindgen (v4l2-sys-mit runs it
# over linux/videodev2.h at build time, which needs libclang).
DEPENDS += "alsa-lib \
            clang-native \
            glib-2.0 \
            gstreamer1.0 \
            gstreamer1.0-plugins-bad \
            gstreamer1.0-plugins-base \
           "

# Cargo.toml's version; tests/yocto_layer.rs keeps the two equal.
PV = "0.1.0+git"

# The source: by default the roomd repository this layer sits in (yocto/meta-roomd), at the
# head of its main branch, so the code, the systemd unit, the sysusers file and the board files
# all come from one revision. A release build points these at the published repository and a
# fixed commit, e.g. in local.conf:
#     ROOMD_GIT_URI = "git://git.example.org/roomd.git;protocol=https"
#     SRCREV:pn-roomd = "<40-hex commit>"
ROOMD_GIT_URI ??= "git://${@os.path.normpath(os.path.join(d.getVar('ROOMD_LAYERDIR'), '..', '..'))};protocol=file"
ROOMD_GIT_BRANCH ??= "main"
SRC_URI = "${ROOMD_GIT_URI};branch=${ROOMD_GIT_BRANCH}"
# nooelint: oelint.vars.autorev - the in-tree default; releases set SRCREV:pn-roomd (README)
SRCREV ??= "${AUTOREV}"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates pkgconfig systemd useradd

export LIBCLANG_PATH = "${STAGING_LIBDIR_NATIVE}"
# nooelint: oelint.vars.mispell.unknown - read by bindgen's build scripts
BINDGEN_EXTRA_CLANG_ARGS = "${HOST_CC_ARCH}${TOOLCHAIN_OPTIONS} --target=${TARGET_SYS}"
export BINDGEN_EXTRA_CLANG_ARGS

# Only the roomd binary (the workspace also holds the test bed).
CARGO_BUILD_FLAGS += "--package roomd --bin roomd"

# roomd's Cargo.toml says rust-version = "1.95" (edition 2024 and newer std APIs). Yocto 6.0
# (wrynose) ships Rust 1.94.1: say so at parse time instead of failing deep inside cargo.
ROOMD_MIN_RUST = "1.95"
# nooelint: oelint.task.noanonpython - a parse-time skip with the reason beats a cargo error
python () {
    def ver(s):
        return tuple(int(x) for x in s.rstrip('%').split('.')[:2] if x.isdigit())
    have = d.getVar('RUSTVERSION') or ''
    need = d.getVar('ROOMD_MIN_RUST')
    if have and ver(have) < ver(need):
        raise bb.parse.SkipRecipe('roomd needs Rust %s or later; this build has RUSTVERSION %s '
                                  '(see meta-roomd/README.md, "Rust")' % (need, have))
}

# The service account, as systemd/roomd.sysusers declares it (tests/yocto_layer.rs compares the
# two): user and group roomd, home /var/lib/roomd, in audio, video and gpio. audio and video
# come from base-passwd; gpio is created here (the Raspberry Pi udev rules give it the GPIO
# devices).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system gpio"
USERADD_PARAM:${PN} = "--system --user-group --home-dir ${localstatedir}/lib/roomd \
                       --no-create-home --shell /sbin/nologin --groups audio,video,gpio roomd"

SYSTEMD_SERVICE:${PN} = "roomd.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/roomd.service ${D}${systemd_system_unitdir}/roomd.service
    install -d ${D}${nonarch_libdir}/sysusers.d
    install -m 0644 ${S}/systemd/roomd.sysusers ${D}${nonarch_libdir}/sysusers.d/roomd.conf

    install -d ${D}${sysconfdir}/roomd
    install -m 0644 ${S}/board/raspberrypi/roomd.toml ${D}${sysconfdir}/roomd/roomd.toml
    install -d ${D}${sysconfdir}/alsa/conf.d
    install -m 0644 ${S}/board/raspberrypi/asound.conf ${D}${sysconfdir}/alsa/conf.d/60-roomd.conf
    install -d ${D}${nonarch_base_libdir}/udev/rules.d
    for rules in ${S}/board/raspberrypi/udev/*.rules; do
        install -m 0644 "$rules" ${D}${nonarch_base_libdir}/udev/rules.d/
    done

    install -d ${D}${docdir}/${BPN}
    install -m 0644 ${S}/README.md ${D}${docdir}/${BPN}/README.md
}

# The regenerated crate list comes from tools/gen-crates-inc, so bitbake and the repository
# write the same file (the class alone would also read fuzz/Cargo.lock, which is not built).
do_update_crates() {
    nativepython3 ${S}/tools/gen-crates-inc --root ${S} --output ${THISDIR}/${BPN}-crates.inc
}

FILES:${PN} += "${nonarch_base_libdir}/udev/rules.d \
                ${nonarch_libdir}/sysusers.d \
                ${sysconfdir}/alsa/conf.d \
                "
# The room's config: an upgrade keeps the admin's edits.
CONFFILES:${PN} = "${sysconfdir}/roomd/roomd.toml \
                   ${sysconfdir}/alsa/conf.d/60-roomd.conf \
                   "

# The GStreamer elements roomd builds its pipelines from (src/media): webrtcbin and ICE,
# H.264 (the Pi's v4l2h264enc/dec, x264enc, avdec_h264, h264parse, RTP), Opus, the echo
# canceller, ALSA, V4L2, the HDMI output (kmssink), mixing and compositing.
RDEPENDS:${PN} = "gstreamer1.0 \
                  gstreamer1.0-libav \
                  gstreamer1.0-plugins-bad-dtls \
                  gstreamer1.0-plugins-bad-kms \
                  gstreamer1.0-plugins-bad-sctp \
                  gstreamer1.0-plugins-bad-srtp \
                  gstreamer1.0-plugins-bad-videoparsersbad \
                  gstreamer1.0-plugins-bad-webrtc \
                  gstreamer1.0-plugins-bad-webrtcdsp \
                  gstreamer1.0-plugins-base-alsa \
                  gstreamer1.0-plugins-base-app \
                  gstreamer1.0-plugins-base-audioconvert \
                  gstreamer1.0-plugins-base-audiomixer \
                  gstreamer1.0-plugins-base-audioresample \
                  gstreamer1.0-plugins-base-audiotestsrc \
                  gstreamer1.0-plugins-base-compositor \
                  gstreamer1.0-plugins-base-opus \
                  gstreamer1.0-plugins-base-pango \
                  gstreamer1.0-plugins-base-playback \
                  gstreamer1.0-plugins-base-typefindfunctions \
                  gstreamer1.0-plugins-base-videoconvertscale \
                  gstreamer1.0-plugins-base-videorate \
                  gstreamer1.0-plugins-base-videotestsrc \
                  gstreamer1.0-plugins-base-volume \
                  gstreamer1.0-plugins-good-rtp \
                  gstreamer1.0-plugins-good-rtpmanager \
                  gstreamer1.0-plugins-good-video4linux2 \
                  gstreamer1.0-plugins-ugly-x264 \
                  libnice \
                  "
# The software fallback encoder after x264enc, and libcamerasrc for CSI camera modules.
RRECOMMENDS:${PN} = "gstreamer1.0-plugins-bad-openh264 \
                     libcamera-gst \
                     "
