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

watch_upstreams &
exec nginx -c "$conf" -e stderr -g 'daemon off;'
