// Hand-written SMTP servers on loopback that misbehave on purpose: one that drips, one that holds its final "250".
import { createServer, type Server, type Socket } from 'node:net';
import { eventually } from './eventually.js';

export interface ScriptedSmtp {
  url: string;
  /** Messages whose DATA was received in full (accepted or not yet answered). */
  received: string[];
  /** Messages answered "250" on a connection still open: what a real relay would go on to deliver. */
  accepted: string[];
  /** Connections open now (a client killed mid-DATA closes its own). */
  openConnections(): number;
  /** Resolves when `count` messages have been received in full. */
  waitForReceived(count: number, timeoutMs?: number): Promise<void>;
  /** Resolves when `count` sessions have reached the point where the server starts misbehaving. */
  waitForStalls(count: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export interface ScriptedSmtpOptions {
  /**
   * 'drip': after EHLO, sends "250-" continuation lines forever, one every 100 ms (each resets a socket timeout).
   * 'hold': receives the message, then waits for `beforeAccept` before saying "250".
   * 'accept': a plain, well-behaved server.
   */
  mode: 'drip' | 'hold' | 'accept';
  /** Runs after the whole message arrived and before its "250" (in 'hold' and 'accept' modes). */
  beforeAccept?: (message: string) => Promise<void>;
}

function waiter(what: string, read: () => number) {
  return async (count: number, timeoutMs = 20_000) => {
    await eventually(`${count} ${what}`, () => read() >= count, { timeoutMs, everyMs: 10 });
  };
}

export async function startScriptedSmtp(options: ScriptedSmtpOptions): Promise<ScriptedSmtp> {
  const received: string[] = [];
  const accepted: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let stalls = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffer = '';
    let inData = false;
    let message = '';
    const say = (line: string) => {
      if (!socket.destroyed) socket.write(`${line}\r\n`);
    };
    say('220 scripted.test ESMTP');
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      for (let end = buffer.indexOf('\r\n'); end >= 0; end = buffer.indexOf('\r\n')) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (inData) {
          if (line !== '.') {
            message += `${line}\n`;
            continue;
          }
          inData = false;
          const whole = message;
          received.push(whole);
          stalls += options.mode === 'hold' ? 1 : 0;
          void (options.beforeAccept?.(whole) ?? Promise.resolve()).then(() => {
            if (socket.destroyed) return;
            accepted.push(whole);
            say('250 2.0.0 queued');
          });
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') {
          if (options.mode === 'drip') {
            stalls += 1;
            const timer = setInterval(() => say('250-still thinking'), 100);
            timers.add(timer);
            socket.on('close', () => clearInterval(timer));
          } else say('250 scripted.test');
        } else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') say('250 OK');
        else if (verb === 'DATA') {
          inData = true;
          message = '';
          say('354 go ahead');
        } else if (verb === 'QUIT') {
          say('221 bye');
          socket.end();
        } else say('502 not implemented');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    received,
    accepted,
    openConnections: () => sockets.size,
    waitForReceived: waiter('messages received', () => received.length),
    waitForStalls: waiter('stalled deliveries', () => stalls),
    async close() {
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
