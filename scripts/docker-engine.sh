#!/usr/bin/env bash
# Make sure a Docker engine with Compose v2 and buildx answers on this machine.
#
# Debian 12 ships Docker 20.10 and Compose v1 only, so the engine comes from Debian 13
# (trixie) at low pin priority: only the four Docker packages are taken from it. Where
# systemd is not PID 1 (containers, CI sandboxes) dockerd is started here and supervised
# by nothing but its restart-on-next-run logic below. Safe to run any number of times.
set -euo pipefail

log() { printf 'docker-engine: %s\n' "$*" >&2; }

engine_answers() { docker info >/dev/null 2>&1; }

have_packages() {
  command -v dockerd >/dev/null 2>&1 &&
    docker compose version >/dev/null 2>&1 &&
    docker buildx version >/dev/null 2>&1
}

install_packages() {
  log "installing docker.io, compose v2 and buildx from Debian 13 (trixie)"
  if grep -q 'VERSION_CODENAME=bookworm' /etc/os-release; then
    cat >/etc/apt/sources.list.d/trixie.sources <<'X'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
X
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >/etc/apt/preferences.d/trixie-low
    target=(-t trixie)
  else
    target=()
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${target[@]}" \
    docker.io docker-cli docker-compose docker-buildx >/dev/null
}

# A new engine gets the userland proxy off: Docker then forwards published ports with NAT rules
# instead of a docker-proxy process per port that carries (and holds six files for) every
# connection. Measured here: 2.4x the requests/s of a bare nginx, and WebSocket capacity no longer
# bounded by docker-proxy's open files (bench/README.md). An existing daemon.json is left alone.
configure_daemon() {
  [ -e /etc/docker/daemon.json ] && return
  log "writing /etc/docker/daemon.json (userland-proxy off)"
  mkdir -p /etc/docker
  printf '{\n    "userland-proxy": false\n}\n' >/etc/docker/daemon.json
}

start_daemon() {
  if [ "$(ps -o comm= -p 1 2>/dev/null)" = systemd ]; then
    systemctl enable --now docker
    return
  fi
  # A pid file left by an unclean stop blocks dockerd when its pid was reused.
  if [ -f /var/run/docker.pid ] && ! ps -o comm= -p "$(cat /var/run/docker.pid)" 2>/dev/null | grep -q dockerd; then
    rm -f /var/run/docker.pid
  fi
  pgrep -x dockerd >/dev/null || {
    log "starting dockerd (log: /var/log/dockerd.log)"
    nohup /usr/sbin/dockerd >>/var/log/dockerd.log 2>&1 &
  }
}

engine_answers && have_packages && exit 0
have_packages || install_packages
pgrep -x dockerd >/dev/null || configure_daemon
start_daemon
for _ in $(seq 1 60); do
  engine_answers && { log "engine ready: $(docker version -f '{{.Server.Version}}')"; exit 0; }
  sleep 1
done
log "dockerd did not answer within 60 s; last lines of /var/log/dockerd.log:"
tail -n 30 /var/log/dockerd.log >&2 || true
exit 1
