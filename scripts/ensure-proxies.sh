#!/usr/bin/env bash
# The scale-out tests run Debian's nginx (with its stream module, for the federation port) and
# Debian's Caddy in front of several `parley serve` processes. Installed here when missing; the
# packages' own services are never started (the tests run each proxy with its own config).
set -euo pipefail
if [ -x /usr/sbin/nginx ] && [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] && [ -x /usr/bin/caddy ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "nginx or Caddy is missing: run 'sudo apt-get update && sudo apt-get install -y nginx libnginx-mod-stream caddy'" >&2
  exit 1
fi
echo "installing nginx and Caddy for the scale-out tests…"
export DEBIAN_FRONTEND=noninteractive
# Keep the packages from starting their own servers on ports 80 and 443.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
# Another installer (e.g. ensure-chromium.sh from a test running at the same time) may hold
# dpkg's lock: wait for it instead of failing.
apt_get() {
  for _ in $(seq 1 60); do
    if apt-get -o DPkg::Lock::Timeout=600 "$@"; then return 0; fi
    if ! fuser /var/lib/dpkg/lock-frontend /var/lib/apt/lists/lock >/dev/null 2>&1; then return 1; fi
    sleep 5
  done
  return 1
}
apt_get update -qq
apt_get install -y -qq nginx libnginx-mod-stream caddy >/dev/null
