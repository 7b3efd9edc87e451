// The shipped portal vhost's TLS as Debian's testssl.sh rates it, on loopback: nothing high or critical.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCaSignedCert, startPortalNginx, type PrivateTlsNginx } from '../harness/nginx.js';
import { findProgram, run } from '../harness/sshd.js';

const SERVER_NAME = 'portal.example.net';

interface Finding {
  id: string;
  severity: string;
  finding: string;
}

let base: string;
let upstream: Server;
let nginx: PrivateTlsNginx;
let ca: string;

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'archway-portal-tls-'));
  upstream = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('portal'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const tls = await makeCaSignedCert(join(base, 'tls'), SERVER_NAME);
  ca = tls.ca;
  nginx = await startPortalNginx({
    dir: join(base, 'nginx'),
    upstreamPort: (upstream.address() as { port: number }).port,
    serverName: SERVER_NAME,
    tls,
  });
});
afterAll(async () => {
  await nginx?.stop();
  await new Promise((r) => upstream?.close(r));
  await rm(base, { recursive: true, force: true });
});

describe('the portal vhost as testssl.sh sees it', () => {
  it('has no finding rated high or critical', { timeout: 900_000 }, async () => {
    const json = join(base, 'testssl.json');
    // --ip and --nodns none: no name is ever resolved; without --phone-out no CRL or OCSP server is asked.
    const out = await run(findProgram('testssl'), [
      '--quiet',
      '--color',
      '0',
      '--warnings',
      'off',
      '--fast',
      '--sneaky',
      // Protocols, cipher categories, forward secrecy, certificate and server defaults: about a minute
      // on an idle machine. Not -U (vulnerabilities) nor -e: minutes more of handshakes written in bash.
      '--protocols',
      '--std',
      '--fs',
      '--server-defaults',
      '--ip',
      '127.0.0.1',
      '--nodns',
      'none',
      '--add-ca',
      ca,
      '--connect-timeout',
      '5',
      '--openssl-timeout',
      '5',
      '--jsonfile',
      json,
      `https://${SERVER_NAME}:${nginx.httpsPort}/`,
    ]);
    const findings = JSON.parse(await readFile(json, 'utf8')) as Finding[];
    // The run must have reached the server: it negotiated TLS 1.3 and read the certificate we made.
    expect(findings.find((f) => f.id === 'TLS1_3')?.finding, out.stdout).toMatch(/^offered/);
    expect(findings.find((f) => f.id === 'cert_commonName')?.finding).toBe(SERVER_NAME);
    expect(findings.find((f) => f.id === 'cert_chain_of_trust')?.severity).toBe('OK');

    const notable = findings.filter((f) => !['OK', 'INFO'].includes(f.severity));
    // The rest (low, medium, warnings) is for the operator's notes, not a failure.
    console.log(`testssl.sh findings below HIGH:\n${notable.map((f) => `  ${f.severity} ${f.id}: ${f.finding}`).join('\n')}`);
    expect(notable.filter((f) => ['HIGH', 'CRITICAL'].includes(f.severity))).toEqual([]);
  });
});
