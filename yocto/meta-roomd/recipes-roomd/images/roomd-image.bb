SUMMARY = "A Raspberry Pi 4 room device running roomd"
DESCRIPTION = "A small systemd image that boots straight into roomd: the daemon \
               with its GStreamer plugins, the Raspberry Pi's udev rules and firmware, \
               and the few tools an admin needs to provision and check the room."
HOMEPAGE = "https://matrix.org/"
SECTION = "images"
LICENSE = "MIT"

inherit core-image

# roomd is a systemd service (Type=notify, watchdog, LoadCredential=, sysusers).
REQUIRED_DISTRO_FEATURES = "systemd"
inherit features_check

IMAGE_FEATURES += "ssh-server-openssh"

# roomd brings the gpio group with it (its useradd settings); the Raspberry Pi's udev rules
# (udev-rules-rpi, the machine's recommendation) hand /dev/gpiomem and /dev/gpiochip* to it.
IMAGE_INSTALL:append = " alsa-utils-alsamixer \
                        alsa-utils-amixer \
                        alsa-utils-aplay \
                        ca-certificates \
                        libcamera-gst \
                        roomd \
                        tzdata \
                        udev-rules-rpi \
                        v4l-utils \
                        "
# The image is the room device's own: the GPU memory and codec blocks for the Pi 4's H.264
# encoder are set through the machine's config.txt variables (yocto/kas/roomd-rpi4.yml).
COMPATIBLE_MACHINE = "^rpi$"
