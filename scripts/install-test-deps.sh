#!/usr/bin/env bash
# Installs the Debian packages the test suite runs for real: PostgreSQL server, sshd, sudo, nginx,
# Chromium, openssl, curl, systemd-analyze, logrotate, testssl.sh (rates the portal vhost's TLS on
# loopback), and docker-compose (only to validate docker-compose.yml; no engine is needed).
# Idempotent: installs only what is missing. Runs as root, or asks sudo when it has something to install.
set -euo pipefail

declare -A needed=(
  [postgresql]='test -x /usr/lib/postgresql/*/bin/initdb || command -v pg_ctl'
  [openssh-server]='command -v sshd || test -x /usr/sbin/sshd'
  [sudo]='command -v sudo'
  [nginx-light]='command -v nginx || test -x /usr/sbin/nginx'
  [chromium]='test -x /usr/bin/chromium'
  [docker-compose]='command -v docker-compose'
  [openssl]='command -v openssl'
  [curl]='command -v curl'
  [systemd]='command -v systemd-analyze'
  [logrotate]='command -v logrotate || test -x /usr/sbin/logrotate'
  [testssl.sh]='command -v testssl'
)

missing=()
for pkg in "${!needed[@]}"; do
  bash -c "${needed[$pkg]}" >/dev/null 2>&1 || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  echo "install-test-deps: everything is installed."
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  # Root is needed to install; a fresh machine used as root may have no sudo at all, so only ask for it here.
  if command -v sudo >/dev/null 2>&1; then
    echo "install-test-deps: missing ${missing[*]}; installing them with sudo"
    exec sudo "$0" "$@"
  fi
  echo "install-test-deps: missing ${missing[*]}; run this script as root" >&2
  exit 1
fi
echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Services must not start on their own ports: the tests start private instances.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-test-deps: done."
