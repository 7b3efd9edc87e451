// Answers a scrape: the bearer token (when one is configured), compared in constant time, then the exposition.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Metrics } from './metrics.js';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/** Hashing both sides first gives equal lengths, so neither the token's length nor its prefix shows in the timing. */
export function bearerTokenMatches(header: string | undefined, token: string): boolean {
  const given = /^Bearer +(\S+) *$/i.exec(header ?? '')?.[1];
  return timingSafeEqual(digest(given ?? ''), digest(token)) && given !== undefined;
}

export async function answerScrape(metrics: Metrics, token: string | null, request: FastifyRequest, reply: FastifyReply) {
  reply.header('cache-control', 'no-store');
  if (token !== null && !bearerTokenMatches(request.headers.authorization, token)) {
    request.log.info('metrics scrape refused: missing or wrong bearer token');
    return reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').type('text/plain; charset=utf-8').send('Unauthorized\n');
  }
  const { contentType, body } = await metrics.render();
  return reply.type(contentType).send(body);
}
