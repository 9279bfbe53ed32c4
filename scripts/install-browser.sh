#!/usr/bin/env bash
# The headless browser the report's page is tested in (tests/test_report_browser.py):
# Debian's chromium, installed with apt-get as root or with password-less sudo. Never fatal:
# where it cannot be installed, the browser test is skipped and says why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then
  echo "report browser test: chromium is missing and installing it needs root; as root run: apt-get install --no-install-recommends chromium (until then the test is skipped)" >&2
  exit 0
fi
echo "report browser test: installing Debian's chromium with apt-get (the report page is tested in a real browser)"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium; }; then
  echo "report browser test: could not install chromium; the test is skipped" >&2
fi
