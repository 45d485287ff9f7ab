#!/usr/bin/env bash
# The scale-out test runs Debian's nginx (with its stream module, for the federation port)
# in front of several `parley serve` processes. Installed here when missing; the package's
# own service is never started (the test runs nginx with its own config and prefix).
set -euo pipefail
if [ -x /usr/sbin/nginx ] && [ -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "nginx is missing: run 'sudo apt-get update && sudo apt-get install -y nginx libnginx-mod-stream'" >&2
  exit 1
fi
echo "installing nginx for the scale-out test…"
export DEBIAN_FRONTEND=noninteractive
# Keep the package from starting its own server on port 80.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -qq
apt-get install -y -qq nginx libnginx-mod-stream >/dev/null
