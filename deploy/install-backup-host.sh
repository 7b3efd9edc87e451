#!/bin/sh
# install-backup-host.sh: installs Archway's backup-host side (user, gate, sudoers rule, root-only
# dispatcher and config, secure_link secret, nginx downloads vhost, systemd units). Idempotent:
# run it again after an upgrade or a settings change; the secret and existing archives are kept.
#
# Usage (as root, from a checkout where `npm run build` has run):
#   deploy/install-backup-host.sh \
#     --portal-address 203.0.113.10 --public-key portal_ed25519.pub \
#     --backup-root /srv/backups --download-base-url https://dl.example.net \
#     --portal-url https://portal.example.net/ \
#     [--tls-cert FILE --tls-key FILE] [--user archway] [--nginx-group www-data]
#     [--dispatcher dist/dispatcher/archway-dispatcher.mjs] [--prefix DIR] [--no-start]
#
# --prefix installs every file under DIR (the user is still created on this system); tests use it.
set -eu
umask 022

die() { echo "install-backup-host: $*" >&2; exit 1; }
say() { echo "install-backup-host: $*"; }

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

PREFIX=
USER_NAME=archway
PORTAL_ADDRESS=
PUBLIC_KEY_FILE=
BACKUP_ROOT=
DOWNLOAD_BASE_URL=
PORTAL_URL=
TLS_CERT=
TLS_KEY=
NGINX_GROUP=www-data
DISPATCHER_SRC="$REPO/dist/dispatcher/archway-dispatcher.mjs"
START=yes

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX=${2:?}; shift 2 ;;
    --user) USER_NAME=${2:?}; shift 2 ;;
    --portal-address) PORTAL_ADDRESS=${2:?}; shift 2 ;;
    --public-key) PUBLIC_KEY_FILE=${2:?}; shift 2 ;;
    --backup-root) BACKUP_ROOT=${2:?}; shift 2 ;;
    --download-base-url) DOWNLOAD_BASE_URL=${2:?}; shift 2 ;;
    --portal-url) PORTAL_URL=${2:?}; shift 2 ;;
    --tls-cert) TLS_CERT=${2:?}; shift 2 ;;
    --tls-key) TLS_KEY=${2:?}; shift 2 ;;
    --nginx-group) NGINX_GROUP=${2:?}; shift 2 ;;
    --dispatcher) DISPATCHER_SRC=${2:?}; shift 2 ;;
    --no-start) START=no; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root"

# Every value below ends up in sudoers, sshd, nginx or a shell line unquoted, so each is checked
# against a plain pattern first; anything unusual is refused rather than escaped.
safe_path() { case "$1" in /*) ;; *) return 1 ;; esac; case "$1" in *[!A-Za-z0-9/._-]*|*/../*|*/..) return 1 ;; esac; }
[ -z "$PREFIX" ] || safe_path "$PREFIX" || die "--prefix must be an absolute plain path"
PREFIX=${PREFIX%/}
case "$USER_NAME" in ''|*[!a-z0-9_-]*|[!a-z_]*) die "--user must be a plain lowercase user name" ;; esac
case "$NGINX_GROUP" in ''|*[!a-z0-9_-]*|[!a-z_]*) die "--nginx-group must be a plain group name" ;; esac
case "$PORTAL_ADDRESS" in ''|*[!0-9A-Fa-f:./,]*) die "--portal-address must be the portal's IP address(es) (comma-separated, CIDR allowed)" ;; esac
safe_path "$BACKUP_ROOT" || die "--backup-root must be an absolute plain path"
case "$DOWNLOAD_BASE_URL" in https://*|http://*) ;; *) die "--download-base-url must be like https://dl.example.net" ;; esac
case "$DOWNLOAD_BASE_URL" in *[!A-Za-z0-9.:/-]*|*://*/*) die "--download-base-url must be scheme://host[:port] with no path" ;; esac
case "$PORTAL_URL" in https://*|http://*) ;; *) die "--portal-url must be the portal's https URL" ;; esac
case "$PORTAL_URL" in *[!A-Za-z0-9.:/_-]*) die "--portal-url has characters that do not belong in a link" ;; esac
[ -f "$PUBLIC_KEY_FILE" ] || die "--public-key must name the portal's public key file"
[ -f "$DISPATCHER_SRC" ] || die "dispatcher bundle not found at $DISPATCHER_SRC (run npm run build)"
PUBLIC_KEY=$(awk 'NR==1 && $1=="ssh-ed25519" && $2 ~ /^[A-Za-z0-9+\/]+=*$/ { print $1" "$2 }' "$PUBLIC_KEY_FILE")
[ -n "$PUBLIC_KEY" ] || die "--public-key must hold one ssh-ed25519 public key"
SERVER_NAME=${DOWNLOAD_BASE_URL#*://}
SERVER_NAME=${SERVER_NAME%%:*}
[ -n "$TLS_CERT" ] || TLS_CERT=/etc/letsencrypt/live/$SERVER_NAME/fullchain.pem
[ -n "$TLS_KEY" ] || TLS_KEY=/etc/letsencrypt/live/$SERVER_NAME/privkey.pem
safe_path "$TLS_CERT" && safe_path "$TLS_KEY" || die "--tls-cert/--tls-key must be absolute plain paths"
getent group "$NGINX_GROUP" >/dev/null || die "group $NGINX_GROUP does not exist (is nginx installed?)"
command -v node >/dev/null || die "node (>= 20) must be installed and on the default PATH"
# The dispatcher runs as root under sudo: its interpreter is named by absolute path, never found
# through PATH by /usr/bin/env (check verifies it).
NODE_BIN=$(readlink -f "$(command -v node)")
safe_path "$NODE_BIN" || die "node's path $NODE_BIN must be an absolute plain path"
[ "$(head -c 2 "$DISPATCHER_SRC")" = '#!' ] || die "$DISPATCHER_SRC does not start with #!"

# Layout (all under PREFIX).
DISPATCHER_DIR=$PREFIX/usr/local/lib/archway-dispatcher
DISPATCHER=$DISPATCHER_DIR/archway-dispatcher.mjs
CONFIG=$DISPATCHER_DIR/dispatcher.json
GATE=$PREFIX/usr/local/sbin/archway-gate
ETC=$PREFIX/etc/archway
SECRET_FILE=$ETC/secure-link.secret
STATE_DIR=$PREFIX/var/lib/archway
ARCHIVE_ROOT=$PREFIX/srv/archway/archives
LINK_ROOT=$PREFIX/srv/archway/links
NGINX_DIR=$PREFIX/etc/nginx
NGINX_ARCHWAY=$NGINX_DIR/archway
# Root-owned, apart from nginx's own log directory: the nginx worker can create nothing here (see
# deploy/logrotate/archway-downloads.in for why the files stay root's).
LOG_DIR=$PREFIX/var/log/archway
DOWNLOAD_LOG=$LOG_DIR/download.log
ACCESS_LOG=$LOG_DIR/downloads-access.log
SYSTEMD_DIR=$PREFIX/etc/systemd/system
for p in "$DISPATCHER" "$GATE" "$STATE_DIR" "$ARCHIVE_ROOT" "$LINK_ROOT" "$DOWNLOAD_LOG"; do
  safe_path "$p" || die "unsafe path $p"
done

# render TEMPLATE > OUT: replaces @@NAME@@ placeholders; values were checked above and contain
# no '|' (the sed delimiter) or '&'. A placeholder left over is an error.
render() {
  sed -e "s|@@DISPATCHER@@|$DISPATCHER|g" -e "s|@@USER@@|$USER_NAME|g" -e "s|@@GATE@@|$GATE|g" \
      -e "s|@@PORTAL_ADDRESS@@|$PORTAL_ADDRESS|g" -e "s|@@PUBLIC_KEY@@|$PUBLIC_KEY|g" \
      -e "s|@@LINK_ROOT@@|$LINK_ROOT|g" -e "s|@@ARCHIVE_ROOT@@|$ARCHIVE_ROOT|g" -e "s|@@STATE_DIR@@|$STATE_DIR|g" \
      -e "s|@@ERRORS_DIR@@|$NGINX_ARCHWAY/errors|g" -e "s|@@SECRET_CONF@@|$NGINX_ARCHWAY/secure-link-secret.conf|g" \
      -e "s|@@DOWNLOAD_LOG@@|$DOWNLOAD_LOG|g" -e "s|@@ACCESS_LOG@@|$ACCESS_LOG|g" -e "s|@@PORTAL_URL@@|$PORTAL_URL|g" \
      -e "s|@@SERVER_NAME@@|$SERVER_NAME|g" -e "s|@@TLS_CERT@@|$TLS_CERT|g" -e "s|@@TLS_KEY@@|$TLS_KEY|g" \
      -e "s|@@SERVER_INCLUDE@@|$NGINX_ARCHWAY/downloads.server.conf|g" "$1"
}
# put MODE OWNER:GROUP SOURCE DEST: atomic replace (write beside, then rename), never a half file.
put() {
  mkdir -p "$(dirname "$4")"
  cp "$3" "$4.new.$$"
  chown "$2" "$4.new.$$"
  chmod "$1" "$4.new.$$"
  mv -f "$4.new.$$" "$4"
}
put_rendered() {
  tmp=$(mktemp)
  render "$3" > "$tmp"
  if grep -q '@@[A-Z_]*@@' "$tmp"; then rm -f "$tmp"; die "template $3 has an unfilled placeholder"; fi
  put "$1" "$2" "$tmp" "$4"
  rm -f "$tmp"
}
dir() { mkdir -p "$3"; chown "$2" "$3"; chmod "$1" "$3"; }

# 1. The dedicated user: shell /bin/sh (the forced command runs through it), no password.
if ! getent passwd "$USER_NAME" >/dev/null; then
  mkdir -p "$PREFIX/home"
  useradd --system --create-home --home-dir "$PREFIX/home/$USER_NAME" --shell /bin/sh --comment "Archway portal access" "$USER_NAME"
  say "created user $USER_NAME"
fi
# "*" rather than the locked "!": sshd refuses locked accounts even for keys when PAM is off.
usermod --password '*' --shell /bin/sh "$USER_NAME"
USER_HOME=$(getent passwd "$USER_NAME" | cut -d: -f6)

# 2. Directories. Archives and links are readable by the nginx group only; the rest is root's.
dir 0755 root:root "$PREFIX/usr/local/sbin"
dir 0700 root:root "$DISPATCHER_DIR"
dir 0700 root:root "$ETC"
dir 0700 root:root "$STATE_DIR"
dir 0750 "root:$NGINX_GROUP" "$ARCHIVE_ROOT"
# nginx only traverses LINK_ROOT (the random directory name is the secret); it never lists it.
dir 0710 "root:$NGINX_GROUP" "$LINK_ROOT"
dir 0755 root:root "$LOG_DIR"
LOG_GROUP=root
if getent group adm >/dev/null; then LOG_GROUP=adm; fi
for f in "$DOWNLOAD_LOG" "$ACCESS_LOG"; do
  [ -e "$f" ] || : > "$f"
  chown "root:$LOG_GROUP" "$f"
  chmod 0640 "$f"
done
dir 0755 root:root "$NGINX_ARCHWAY"
dir 0755 root:root "$NGINX_ARCHWAY/errors"

# 3. The secure_link secret: made once, kept across re-runs (changing it voids issued links).
if [ ! -s "$SECRET_FILE" ]; then
  tmp=$(mktemp)
  head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' > "$tmp"
  echo >> "$tmp"
  put 0600 root:root "$tmp" "$SECRET_FILE"
  rm -f "$tmp"
  say "generated the secure_link secret"
fi
chown root:root "$SECRET_FILE"; chmod 0600 "$SECRET_FILE"
SECRET=$(head -n 1 "$SECRET_FILE")
case "$SECRET" in ''|*[!A-Za-z0-9_-]*) die "$SECRET_FILE must hold one base64url line" ;; esac

# 4. The dispatcher (root-only) and its config.
tmp=$(mktemp)
{ printf '#!%s\n' "$NODE_BIN"; tail -n +2 "$DISPATCHER_SRC"; } > "$tmp"
put 0700 root:root "$tmp" "$DISPATCHER"
rm -f "$tmp"
tmp=$(mktemp)
cat > "$tmp" <<EOF
{
  "backupRoot": "$BACKUP_ROOT",
  "archiveRoot": "$ARCHIVE_ROOT",
  "linkRoot": "$LINK_ROOT",
  "stateDir": "$STATE_DIR",
  "secureLinkSecretFile": "$SECRET_FILE",
  "downloadBaseUrl": "$DOWNLOAD_BASE_URL",
  "linkTtlSeconds": 60,
  "linkGraceSeconds": 300,
  "archiveRetentionDays": 7,
  "ipRetentionDays": 30,
  "downloadLog": "$DOWNLOAD_LOG",
  "maxRequestBytes": 65536,
  "nginxGroup": "$NGINX_GROUP"
}
EOF
put 0600 root:root "$tmp" "$CONFIG"
rm -f "$tmp"

# 5. The gate: root-owned, readable and executable by the SSH user, writable by nobody else.
put_rendered 0755 root:root "$HERE/archway-gate" "$GATE"

# 6. sudoers: validated on its own, then installed atomically, then the whole config rechecked.
if [ -n "$PREFIX" ]; then SUDOERS=$PREFIX/etc/sudoers.d/archway; else SUDOERS=/etc/sudoers.d/archway; fi
tmp=$(mktemp)
render "$HERE/archway.sudoers.in" > "$tmp"
visudo -c -q -f "$tmp" || { rm -f "$tmp"; die "the rendered sudoers rule does not parse; nothing installed"; }
put 0440 root:root "$tmp" "$SUDOERS"
rm -f "$tmp"
if [ -z "$PREFIX" ]; then visudo -c -q || die "sudoers as a whole no longer parses: check /etc/sudoers.d"; fi

# 7. SSH: the one restricted key line (root-owned, so the user cannot change its forced command)
# and a per-user sshd snippet that forces the gate even for a key added by mistake.
dir 0755 root:root "$USER_HOME"
dir 0755 root:root "$USER_HOME/.ssh"
put_rendered 0644 root:root "$HERE/authorized_keys.in" "$USER_HOME/.ssh/authorized_keys"
put_rendered 0644 root:root "$HERE/sshd-archway.conf.in" "$PREFIX/etc/ssh/sshd_config.d/archway.conf"

# 8. nginx: http-level pieces, the secret include (root-only; the master reads it as root), the
# server body, error pages and the TLS vhost.
put 0644 root:root "$REPO/nginx/archway-http.conf" "$NGINX_DIR/conf.d/archway-http.conf"
tmp=$(mktemp)
sed "s|@@SECRET@@|$SECRET|" "$REPO/nginx/secure-link-secret.conf.in" > "$tmp"
put 0600 root:root "$tmp" "$NGINX_ARCHWAY/secure-link-secret.conf"
rm -f "$tmp"
put_rendered 0644 root:root "$REPO/nginx/downloads.server.conf.in" "$NGINX_ARCHWAY/downloads.server.conf"
for page in 403 404 410 429; do
  put_rendered 0644 root:root "$REPO/nginx/errors/$page.html.in" "$NGINX_ARCHWAY/errors/$page.html"
done
put_rendered 0644 root:root "$REPO/nginx/downloads.conf.in" "$NGINX_DIR/sites-available/archway-downloads.conf"
mkdir -p "$NGINX_DIR/sites-enabled"
ln -sfn ../sites-available/archway-downloads.conf "$NGINX_DIR/sites-enabled/archway-downloads.conf"

# 9. logrotate for the downloads vhost's logs (root-owned files, nginx reloaded).
put_rendered 0644 root:root "$HERE/logrotate/archway-downloads.in" "$PREFIX/etc/logrotate.d/archway-downloads"

# 10. systemd: watch (always running) and sweep (every minute).
put_rendered 0644 root:root "$HERE/systemd/archway-watch.service.in" "$SYSTEMD_DIR/archway-watch.service"
put_rendered 0644 root:root "$HERE/systemd/archway-sweep.service.in" "$SYSTEMD_DIR/archway-sweep.service"
put 0644 root:root "$HERE/systemd/archway-sweep.timer" "$SYSTEMD_DIR/archway-sweep.timer"

# 11. Start or reload what runs, only on a real install.
if [ -z "$PREFIX" ] && [ "$START" = yes ]; then
  sshd -t && { systemctl reload ssh 2>/dev/null || systemctl reload sshd 2>/dev/null || true; }
  nginx -t && { systemctl reload nginx 2>/dev/null || true; }
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable --now archway-watch.service archway-sweep.timer
  fi
  "$DISPATCHER" check || die "the dispatcher's self-check found problems (see above)"
fi

say "installed: gate $GATE, dispatcher $DISPATCHER, user $USER_NAME"
say "pin this host key fingerprint in the portal's backup-host settings:"
for k in "$PREFIX"/etc/ssh/ssh_host_ed25519_key.pub /etc/ssh/ssh_host_ed25519_key.pub; do
  if [ -f "$k" ]; then ssh-keygen -l -E sha256 -f "$k" | awk '{ print "  " $2 }'; break; fi
done
