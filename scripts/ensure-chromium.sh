#!/usr/bin/env bash
# The e2e tests drive Debian's Chromium through playwright-core (never a downloaded browser).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "Chromium is missing: run 'sudo apt-get update && sudo apt-get install -y chromium'" >&2
  exit 1
fi
echo "installing Chromium for the e2e tests…"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The emoji font makes reactions and screenshots readable; Debian has none by default.
apt-get install -y -qq chromium fonts-noto-color-emoji >/dev/null
