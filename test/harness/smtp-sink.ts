// An SMTP server on loopback that collects every message it accepts, parsed; it can stop and come back on the same port.
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { eventually } from './eventually.js';
import { freeLoopbackPort } from './sshd.js';

export interface SmtpSinkOptions {
  /** Recipients answered with "550 mailbox unavailable", like a real server refusing them. */
  refuseRecipients?: string[];
  /** When set, the sink requires AUTH with exactly these credentials. */
  credentials?: { user: string; password: string };
  /** Start listening at once (default); false only reserves the port, standing for a server that is down. */
  start?: boolean;
}

export interface SmtpSink {
  host: string;
  port: number;
  /** smtp://host:port, without credentials. */
  url: string;
  /** Every accepted message, parsed, in arrival order. */
  messages: ParsedMail[];
  /** Raw source of every accepted message, in arrival order. */
  raw: Buffer[];
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Forgets the messages received so far. */
  clear(): void;
  /** Resolves when at least `count` messages have arrived; rejects after timeoutMs. */
  waitForMessages(count: number, timeoutMs?: number): Promise<ParsedMail[]>;
}

function smtpError(message: string, responseCode: number): Error {
  return Object.assign(new Error(message), { responseCode });
}

export async function createSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const host = '127.0.0.1';
  const port = await freeLoopbackPort(host);
  const messages: ParsedMail[] = [];
  const raw: Buffer[] = [];
  const refused = new Set((options.refuseRecipients ?? []).map((r) => r.toLowerCase()));
  let server: SMTPServer | null = null;

  const serverOptions: SMTPServerOptions = {
    // Plain SMTP on loopback: the test transport has no certificate to trust.
    disabledCommands: options.credentials ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: options.credentials === undefined,
    allowInsecureAuth: true,
    logger: false,
    onAuth(auth, _session, callback) {
      const expected = options.credentials;
      if (expected && auth.username === expected.user && auth.password === expected.password) callback(null, { user: auth.username });
      else callback(smtpError('Authentication failed', 535));
    },
    onRcptTo(address, _session, callback) {
      if (refused.has(address.address.toLowerCase())) callback(smtpError(`Mailbox unavailable: ${address.address}`, 550));
      else callback();
    },
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const source = Buffer.concat(chunks);
        simpleParser(source).then(
          (parsed) => {
            raw.push(source);
            messages.push(parsed);
            callback();
          },
          (error: Error) => callback(error),
        );
      });
    },
  };

  const sink: SmtpSink = {
    host,
    port,
    url: `smtp://${host}:${port}`,
    messages,
    raw,
    async start() {
      if (server) return;
      const candidate = new SMTPServer(serverOptions);
      await new Promise<void>((resolve, reject) => {
        candidate.once('error', reject);
        candidate.listen(port, host, () => resolve());
      });
      candidate.on('error', () => undefined);
      server = candidate;
    },
    async stop() {
      const current = server;
      server = null;
      if (current) await new Promise<void>((resolve) => current.close(() => resolve()));
    },
    clear() {
      messages.length = 0;
      raw.length = 0;
    },
    waitForMessages: (count, timeoutMs = 20_000) =>
      eventually(`${count} messages at the SMTP sink (it has ${messages.length})`, () => messages.length >= count && messages, {
        timeoutMs,
        everyMs: 20,
      }),
  };
  if (options.start !== false) await sink.start();
  return sink;
}
