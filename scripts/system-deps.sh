#!/usr/bin/env bash
# Debian packages the tests and benchmarks use on the controller: a real redis-server for the
# app's tests, Debian's Chromium for the browser tests (never a downloaded browser), debootstrap
# and Debian's archive keyring for the offline base images, gnupg for the role test that signs a
# fake mirror with a key that is not Debian's, wrk for the HTTP benchmarks, and python3-apt for the
# role's apt tasks on this machine (Ansible's apt module runs under the system python3 that has
# it). Installs only what is missing.
set -euo pipefail
want=(redis-server chromium chromium-driver debootstrap debian-archive-keyring gnupg wrk python3-apt)
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "system-deps: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
