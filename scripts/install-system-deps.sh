#!/usr/bin/env bash
# Debian packages the gate needs: promtool (prometheus), amtool (prometheus-alertmanager), the Redis server
# the demo's policy starts as its broker (redis-server) and, for the report's browser test, a headless
# Chromium (chromium). Installs them only when missing; says what it
# does and how to do it by hand otherwise.
set -euo pipefail
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v amtool   >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/chromium ]           || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "releasegate: installing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "releasegate: not root and no sudo; run: apt-get install ${missing[*]}" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
command -v promtool >/dev/null && command -v amtool >/dev/null && command -v redis-server >/dev/null && [ -x /usr/bin/chromium ]
echo "releasegate: promtool, amtool, redis-server and chromium installed"
