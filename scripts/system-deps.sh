#!/usr/bin/env bash
# Debian packages the tests use for real: espeak-ng (TTS), dbus (a private session bus),
# alsa-utils (aplay into a file sink), sox (audio checks), systemd (systemd-analyze),
# chromium + chromium-driver + fonts-noto-cjk (browser tests of the web page),
# faketime (libfaketime: clock jumps), fiu-utils (libfiu: failing disk writes).
set -euo pipefail
packages=(espeak-ng dbus alsa-utils sox systemd chromium chromium-driver fonts-noto-cjk faketime
          fiu-utils)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
