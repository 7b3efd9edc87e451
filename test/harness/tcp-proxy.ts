// A loopback TCP proxy in front of a real server that a test can silence (a partition) or cut (a restart, a failover).
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** The same URL with the proxy's address in place of the server's. */
  urlFor(serverUrl: string): string;
  /** Keeps every socket open but forwards nothing more either way, like a network that drops packets. */
  silence(): void;
  /** Forwards again (data held while silent is dropped, as a partition drops it). */
  resume(): void;
  /** Closes every proxied connection at once; new connections are still accepted. */
  cut(): void;
  /** Closes every proxied connection and each new one at once, like a host that is down; accept() ends it. */
  refuse(): void;
  accept(): void;
  /** Connections opened through the proxy so far. */
  connections(): number;
  /** Bytes dropped while silent: a sentinel that a query was sent into the partition. */
  heldBytes(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let silent = false;
  let opened = 0;
  let held = 0;
  let refusing = false;
  const server: Server = createServer((client) => {
    opened += 1;
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk: Buffer) => {
        if (!silent) to.write(chunk);
        else held += chunk.length;
      });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  const cut = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    refuse() {
      refusing = true;
      cut();
    },
    accept() {
      refusing = false;
    },
    urlFor(serverUrl) {
      const url = new URL(serverUrl);
      url.hostname = '127.0.0.1';
      url.port = String(port);
      return url.href;
    },
    silence: () => void (silent = true),
    resume: () => void (silent = false),
    cut,
    connections: () => opened,
    heldBytes: () => held,
    async close() {
      cut();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
