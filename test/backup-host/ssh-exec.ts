// A bare SSH client for attacker-side tests: it runs any command line, which the portal's client never does.
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';

export interface ExecOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RawExecOptions {
  host: string;
  port: number;
  username: string;
  privateKeyPath: string;
  localAddress?: string;
  /** The command line; null asks for a shell instead of an exec. */
  command: string | null;
  stdin?: string;
  env?: Record<string, string>;
}

/** Connects (accepting any host key: the attacker side does not care), runs, and collects. */
export function rawExec(options: RawExecOptions): Promise<ExecOutcome> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      client.end();
      fn();
    };
    client.on('error', (err) => finish(() => reject(err)));
    client.on('ready', () => {
      const onChannel = (err: Error | undefined, stream: ClientChannel): void => {
        if (err) return finish(() => reject(err));
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        stream.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
        stream.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
        stream.on('exit', (c: number | null) => (code = c));
        stream.on('close', () => finish(() => resolve({ code, stdout, stderr })));
        stream.end(options.stdin ?? '');
      };
      if (options.command === null) client.shell(false, onChannel);
      else client.exec(options.command, options.env ? { env: options.env } : {}, onChannel);
    });
    client.connect(connectOptions(options));
  });
}

/** Logs in with the key, then asks for something other than an exec; resolves with the refusal text. */
export function rawOtherRequest(options: Omit<RawExecOptions, 'command' | 'stdin' | 'env'>, what: 'sftp' | 'tcp-forward'): Promise<string> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    const done = (fn: () => void): void => {
      client.end();
      fn();
    };
    client.on('error', (err) => done(() => reject(err)));
    client.on('ready', () => {
      if (what === 'sftp') {
        client.sftp((err) => done(() => (err ? resolve(err.message) : reject(new Error('sftp was allowed')))));
      } else {
        client.forwardOut('127.0.0.1', 0, '127.0.0.1', 22, (err) =>
          done(() => (err ? resolve(err.message) : reject(new Error('forwarding was allowed')))),
        );
      }
    });
    client.connect(connectOptions(options));
  });
}

/** The attacker's side needs no host key pinning: these tests probe what the server allows. */
function connectOptions(options: Omit<RawExecOptions, 'command' | 'stdin' | 'env'>): ConnectConfig {
  return {
    host: options.host,
    port: options.port,
    username: options.username,
    privateKey: readFileSync(options.privateKeyPath),
    localAddress: options.localAddress,
    readyTimeout: 10_000,
    hostVerifier: () => true,
  };
}
