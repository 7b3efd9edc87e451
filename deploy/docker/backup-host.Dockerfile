# Archway backup host image: sshd + gate + sudo + root-only dispatcher + downloads nginx + watch/sweep.
# Build the dispatcher first (`npm run build`); the image takes the one bundled file.
# Node 24 LTS from the official image (bookworm's own nodejs is 18, older than the dispatcher supports).
FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssh-server sudo nginx-light tar coreutils util-linux ca-certificates \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default /etc/ssh/ssh_host_*
COPY deploy /opt/archway/deploy
COPY nginx /opt/archway/nginx
COPY dist/dispatcher/archway-dispatcher.mjs /opt/archway/dist/dispatcher/archway-dispatcher.mjs
# Only the pinned ed25519 host key (from a secret); keys and nothing else for the one user.
RUN printf '%s\n' 'HostKey /etc/ssh/ssh_host_ed25519_key' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' \
      'PermitRootLogin no' 'AllowUsers archway' 'PermitUserEnvironment no' > /etc/ssh/sshd_config.d/00-archway-container.conf \
 && chmod 0755 /opt/archway/deploy/install-backup-host.sh /opt/archway/deploy/docker/backup-host-entrypoint.sh
EXPOSE 22 443
ENTRYPOINT ["/opt/archway/deploy/docker/backup-host-entrypoint.sh"]
