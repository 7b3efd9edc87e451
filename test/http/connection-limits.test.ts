// The portal's own listener: a slowloris socket is closed, and sockets over the cap are turned away.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_LIMITS } from '../../src/http/limits.js';
import { startPortalWorld, type PortalWorld } from '../harness/world.js';

const CAP = 4;
let subject: PortalWorld;
let port: number;

beforeAll(async () => {
  // The production values with a small cap and a 1 s request timeout, so the test need not open 1024 sockets or wait 10 s.
  subject = await startPortalWorld({ listen: true, httpLimits: { maxConnections: CAP, requestTimeoutMs: 1_000 } });
  port = Number(new URL(subject.origin).port);
});
afterAll(async () => {
  await subject.close();
});

function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** What the server sent on this socket until it closed it. */
function untilClosed(socket: Socket): Promise<string> {
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString()));
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.once('close', () => resolve(received)));
}

describe('the portal listener', () => {
  it('keeps the documented production limits', () => {
    expect(HTTP_LIMITS).toEqual({
      requestTimeoutMs: 10_000,
      connectionTimeoutMs: 70_000,
      keepAliveTimeoutMs: 65_000,
      maxRequestsPerSocket: 1_000,
      maxConnections: 1_024,
    });
    const server = subject.app.server;
    expect([server.keepAliveTimeout, server.timeout, server.maxRequestsPerSocket, server.maxConnections]).toEqual([
      65_000,
      70_000,
      1_000,
      CAP,
    ]);
  });

  it('closes a socket that sends its request headers too slowly, with a 408', async () => {
    const slow = await open();
    const closed = untilClosed(slow);
    slow.write('GET / HTTP/1.1\r\nHost: portal\r\n');
    const timer = setInterval(() => slow.write('X-Slow: 1\r\n'), 200);
    try {
      expect(await closed).toContain('408 Request Timeout');
    } finally {
      clearInterval(timer);
    }
  }, 15_000);

  it('turns away a connection over the cap without an answer, and serves again when one is free', async () => {
    const held = await Promise.all(Array.from({ length: CAP }, () => open()));
    // Each held socket has been accepted: it answers a request on its own.
    const first = held[0]!;
    const answered = new Promise<string>((resolve) => first.once('data', (chunk: Buffer) => resolve(chunk.toString())));
    first.write('GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n');
    expect(await answered).toContain('200 OK');

    const extra = await open();
    const closed = untilClosed(extra);
    extra.write('GET /healthz HTTP/1.1\r\nHost: portal\r\n\r\n');
    expect(await closed).toBe('');

    for (const socket of held) socket.destroy();
    // The server frees the places as it sees the sockets close; a refused try is closed, not answered.
    let status = 0;
    for (let tries = 0; status !== 200 && tries < 50; tries += 1)
      status = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.status,
        () => 0,
      );
    expect(status).toBe(200);
  }, 15_000);
});
