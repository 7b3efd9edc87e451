# Archway portal nginx image: the shipped portal vhost (TLS, redirect, HSTS, proxy to the portal).
FROM nginx:1.26-bookworm
ARG SERVER_NAME=backups.example.net
ARG PORTAL_UPSTREAM=portal:3000
COPY nginx/portal.conf.in /tmp/portal.conf.in
# TLS files arrive as compose secrets under /run/secrets at run time.
RUN rm -f /etc/nginx/conf.d/default.conf \
 && sed -e "s|@@SERVER_NAME@@|${SERVER_NAME}|g" \
        -e "s|@@TLS_CERT@@|/run/secrets/portal-tls-cert|g" \
        -e "s|@@TLS_KEY@@|/run/secrets/portal-tls-key|g" \
        -e "s|@@PORTAL_UPSTREAMS@@|server ${PORTAL_UPSTREAM};|g" /tmp/portal.conf.in > /etc/nginx/conf.d/archway-portal.conf \
 && ! grep -q '@@' /etc/nginx/conf.d/archway-portal.conf \
 && rm /tmp/portal.conf.in
# Healthy = TLS answers and the portal behind it is ready (/readyz through the vhost, as a browser gets there).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["curl", "-fsSk", "-o", "/dev/null", "https://127.0.0.1/readyz"]
