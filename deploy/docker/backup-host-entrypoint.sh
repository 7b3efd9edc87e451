#!/bin/bash
# Container entry of the backup host: installs from secrets, then runs sshd, nginx, watch and a
# once-a-minute sweep (what systemd does on a real host); if any of them stops, the container stops.
set -euo pipefail

install -m 0600 -o root -g root /run/secrets/backup-host-ssh-host-key /etc/ssh/ssh_host_ed25519_key
ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub

/opt/archway/deploy/install-backup-host.sh \
  --portal-address "${ARCHWAY_PORTAL_ADDRESS:?}" \
  --public-key /run/secrets/portal-ssh-public-key \
  --backup-root /srv/backups \
  --download-base-url "${ARCHWAY_DOWNLOAD_BASE_URL:?}" \
  --portal-url "${ARCHWAY_PORTAL_URL:?}" \
  --tls-cert /run/secrets/downloads-tls-cert \
  --tls-key /run/secrets/downloads-tls-key \
  --dispatcher /opt/archway/dist/dispatcher/archway-dispatcher.mjs \
  --no-start

DISPATCHER=/usr/local/lib/archway-dispatcher/archway-dispatcher.mjs
mkdir -p /run/sshd
sshd -t
nginx -t

/usr/sbin/sshd -D -e &
nginx -g 'daemon off;' &
"$DISPATCHER" watch &
( while sleep 60; do "$DISPATCHER" sweep >/dev/null || echo "sweep failed" >&2; done ) &
wait -n
echo "backup host: a service stopped; stopping the container" >&2
exit 1
