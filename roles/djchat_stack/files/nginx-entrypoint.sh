#!/bin/bash
# Managed by the djchat_stack role (files/nginx-entrypoint.sh).
# nginx resolves its upstream names (wsgi, asgi1..N) once, when it loads its configuration.
# Docker gives a container a new address when it restarts it after a crash, so without a reload
# nginx would keep sending every request to the dead address (502) until the next deploy.
# This runs nginx and reloads it whenever one of those names resolves to other addresses. The
# names and the interval are read again on every round from upstream-watch.env, which the role
# renders beside nginx.conf: a new replica count or interval needs no restart of nginx.
set -u
dir=/etc/djchat/nginx
conf=$dir/nginx.conf

addresses() {
  local name
  for name in $DJCHAT_UPSTREAMS; do
    printf '%s=%s\n' "$name" "$(getent ahostsv4 "$name" | cut -d' ' -f1 | sort -u | tr '\n' ',')"
  done
}

watch_upstreams() {
  local seen current
  # shellcheck source=/dev/null
  . "$dir/upstream-watch.env"
  seen=$(addresses)
  while sleep "$DJCHAT_UPSTREAM_WATCH_INTERVAL"; do
    # shellcheck source=/dev/null
    . "$dir/upstream-watch.env"
    current=$(addresses)
    if [[ $current != "$seen" ]]; then
      echo "djchat: upstream addresses changed, reloading nginx: ${current//$'\n'/ }" >&2
      nginx -c "$conf" -s reload && seen=$current
    fi
  done
}

# This host's own connections to the published ports (an SSH tunnel to the admin, the role's
# checks) reach nginx from the gateway of its default route, whether docker-proxy or the NAT
# rules carry them: nginx.conf lets that address reach /admin/ and /readyz like loopback. The
# file always exists (empty when there is no default route), as nginx.conf includes it.
this_host() {
  local destination gateway
  while read -r _ destination gateway _; do
    if [[ $destination == 00000000 && $gateway != 00000000 ]]; then
      # /proc/net/route writes the address as little-endian hex.
      printf '%d.%d.%d.%d' "0x${gateway:6:2}" "0x${gateway:4:2}" "0x${gateway:2:2}" "0x${gateway:0:2}"
      return
    fi
  done </proc/net/route
}

mkdir -p /tmp/djchat
host_address=$(this_host)
printf '%s\n' "${host_address:+$host_address 1;}" >/tmp/djchat/this-host.geo
echo "djchat: this host's connections reach nginx from ${host_address:-nowhere (no default route)}" >&2

watch_upstreams &
exec nginx -c "$conf" -e stderr -g 'daemon off;'
