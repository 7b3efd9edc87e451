// The portal's own limits on client connections, behind (and independent of) NGINX's.
import type { ServerOptions } from 'node:http';

/**
 * The values, with NGINX's beside them in docs/OPERATIONS.md:
 * - requestTimeout: a client has 10 s to send a whole request (headers and a 64 KiB form), so a
 *   slowloris socket is closed after 10-11 s instead of about 90 s;
 * - connectionTimeout: a socket silent for 70 s is closed; longer than the slowest page (two
 *   backup-host calls of up to 30 s) and than NGINX's proxy_read_timeout of 60 s;
 * - keepAliveTimeout: an idle keep-alive socket stays 65 s, longer than NGINX's upstream
 *   keepalive_timeout (60 s), so NGINX never reuses a socket the portal is closing;
 * - maxRequestsPerSocket: a socket is recycled after 1000 requests;
 * - maxConnections: at most 1024 sockets at once; further ones are closed as they arrive.
 */
export const HTTP_LIMITS = {
  requestTimeoutMs: 10_000,
  connectionTimeoutMs: 70_000,
  keepAliveTimeoutMs: 65_000,
  maxRequestsPerSocket: 1_000,
  maxConnections: 1_024,
};

export type HttpLimits = typeof HTTP_LIMITS;

/** Fastify's options for these limits; maxConnections is set on the server once it exists. */
export function fastifyLimitOptions(limits: HttpLimits): {
  requestTimeout: number;
  connectionTimeout: number;
  keepAliveTimeout: number;
  maxRequestsPerSocket: number;
  http: ServerOptions;
} {
  return {
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    // Node checks the request timeout only this often (30 s by default); once a second keeps the bound close.
    http: { headersTimeout: limits.requestTimeoutMs, connectionsCheckingInterval: 1_000 },
  };
}
