#!/usr/bin/env bash
# Make sure a Docker engine with Compose v2 and buildx answers on this machine. It is installed and
# started by the role's own engine tasks (playbooks/engine.yml with inventory/local), the one
# installer for this machine and for deploy targets; safe to run any number of times.
#
# Where the packages come from is djchat_docker_source, which inventory/local reads from
# DJCHAT_DOCKER_SOURCE (default auto: Docker's apt repository on Debian 12, the distribution's
# packages on Debian 13). DJCHAT_DOCKER_SOURCE=trixie takes Debian 13's on Debian 12 and upgrades
# much of the host with them (README, "Docker engine"): only for machines that are thrown away.
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory venv >/dev/null
exec .venv/bin/ansible-playbook playbooks/engine.yml
