// Starts a private nginx on loopback with the shipped downloads or portal vhost, for tests and benches.
import { spawn } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { renderDownloadErrorPages } from '../../src/first-look/download-server.js';
import { cleanupOnExit, findProgram, stopProcess, freeLoopbackPort, readShipped, renderTemplate, runOk } from './sshd.js';

export interface NginxOptions {
  /** Private prefix: config, logs, pid and temp files live here. Must be traversable by `user`. */
  dir: string;
  linkRoot: string;
  secret: string;
  downloadLog: string;
  portalUrl?: string;
  host?: string;
  /** The worker user; the master runs as root like in production. */
  user?: string;
  /** Extra server-level directives (the download bench adds a plain static location). */
  extraServerConfig?: string;
}

export interface PrivateNginx {
  host: string;
  port: number;
  baseUrl: string;
  accessLog: string;
  errorLog: string;
  configPath: string;
  /** Sends the master SIGUSR1, as logrotate does after moving the logs away. */
  reopenLogs(): void;
  stop(): Promise<void>;
}

/** The secure_link_md5 include; the secret must not contain what nginx would read as syntax. */
export function renderSecretConf(secret: string): string {
  if (!/^[A-Za-z0-9_-]{16,128}$/.test(secret)) throw new Error('secure_link secret must be 16-128 base64url characters');
  return renderTemplate(readShipped('nginx/secure-link-secret.conf.in'), { SECRET: secret });
}

function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const socket = connect({ host, port });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${host}:${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Checks the config with `nginx -t`, runs nginx in the foreground and waits until it listens. */
async function runNginx(
  dir: string,
  configPath: string,
  host: string,
  ports: readonly number[],
): Promise<{ stop(): Promise<void>; reopenLogs(): void }> {
  const nginx = findProgram('nginx');
  await runOk(nginx, ['-t', '-q', '-p', dir, '-c', configPath]);
  const child = spawn(nginx, ['-p', dir, '-c', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const killNow = cleanupOnExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  });
  const exitedEarly = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`nginx exited (${code}) while starting: ${stderr}`))),
  );
  exitedEarly.catch(() => undefined);
  await Promise.race([Promise.all(ports.map((p) => waitForPort(host, p, 30_000))), exitedEarly]);
  return {
    stop: () => stopProcess(child, killNow),
    // What logrotate's postrotate does: the master reopens every log file by name.
    reopenLogs: () => {
      child.kill('SIGUSR1');
    },
  };
}

/** The part of nginx.conf around the vhost: private pid, logs and temp paths, the worker user. */
function mainConfig(dir: string, user: string, httpBody: string): string {
  const tmp = join(dir, 'tmp');
  return `
user ${user};
worker_processes 2;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} notice;
events { worker_connections 1024; }
http {
    client_body_temp_path ${tmp}/body;
    proxy_temp_path ${tmp}/proxy;
    fastcgi_temp_path ${tmp}/fastcgi;
    uwsgi_temp_path ${tmp}/uwsgi;
    scgi_temp_path ${tmp}/scgi;
${httpBody}
}
`;
}

/** Writes the downloads vhost's pieces (error pages, secret, http-level file, server body) into a private prefix. */
async function prepareDownloads(options: NginxOptions): Promise<{ serverInclude: string; accessLog: string }> {
  const dir = options.dir;
  for (const sub of ['', 'logs', 'tmp', 'errors']) await mkdir(join(dir, sub), { recursive: true, mode: 0o755 });
  await chmod(dir, 0o755);
  // Rendered by the same code as the first-look download server's, which checks the URL as the install does.
  for (const [status, html] of renderDownloadErrorPages(options.portalUrl ?? 'https://portal.example.net/')) {
    await writeFile(join(dir, 'errors', `${status}.html`), html, { mode: 0o644 });
  }
  const secretConf = join(dir, 'secure-link-secret.conf');
  await writeFile(secretConf, renderSecretConf(options.secret), { mode: 0o600 });
  await writeFile(join(dir, 'archway-http.conf'), readShipped('nginx/archway-http.conf'), { mode: 0o644 });
  const serverInclude = join(dir, 'downloads.server.conf');
  const accessLog = join(dir, 'logs', 'access.log');
  await writeFile(
    serverInclude,
    renderTemplate(readShipped('nginx/downloads.server.conf.in'), {
      LINK_ROOT: options.linkRoot,
      ERRORS_DIR: join(dir, 'errors'),
      SECRET_CONF: secretConf,
      DOWNLOAD_LOG: options.downloadLog,
      ACCESS_LOG: accessLog,
    }),
    { mode: 0o644 },
  );
  return { serverInclude, accessLog };
}

/** Starts nginx in the foreground with the downloads vhost rendered from nginx/ into a private prefix. */
export async function startNginx(options: NginxOptions): Promise<PrivateNginx> {
  const host = options.host ?? '127.0.0.1';
  if (!host.startsWith('127.')) throw new Error('the private nginx listens on loopback only');
  const dir = options.dir;
  const { serverInclude, accessLog } = await prepareDownloads(options);
  const port = await freeLoopbackPort(host);
  const configPath = join(dir, 'nginx.conf');
  const httpBody = `
    include ${join(dir, 'archway-http.conf')};
    server {
        listen ${host}:${port};
        server_name _;
        include ${serverInclude};
        ${options.extraServerConfig ?? ''}
    }`;
  await writeFile(configPath, mainConfig(dir, options.user ?? 'www-data', httpBody), { mode: 0o644 });
  const { stop, reopenLogs } = await runNginx(dir, configPath, host, [port]);
  return {
    host,
    port,
    baseUrl: `http://${host}:${port}`,
    accessLog,
    errorLog: join(dir, 'logs', 'error.log'),
    configPath,
    stop,
    reopenLogs,
  };
}

/** Whether the installed nginx is at least major.minor.patch (`nginx -v` prints "nginx version: nginx/1.22.1" on stderr). */
export async function nginxVersionAtLeast(major: number, minor: number, patch: number): Promise<boolean> {
  const { stderr } = await runOk(findProgram('nginx'), ['-v']);
  const found = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(stderr);
  if (!found) throw new Error(`cannot read the nginx version from: ${stderr}`);
  const [a, b, c] = found.slice(1).map(Number) as [number, number, number];
  return a !== major ? a > major : b !== minor ? b > minor : c >= patch;
}

/** A self-signed certificate for loopback TLS tests (the clients do not verify it). */
export async function makeSelfSignedCert(dir: string, commonName: string): Promise<{ cert: string; key: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const cert = join(dir, 'tls-cert.pem');
  const key = join(dir, 'tls-key.pem');
  await runOk(findProgram('openssl'), [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '1',
    '-subj',
    `/CN=${commonName}`,
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  return { cert, key };
}

/**
 * A test certificate authority and a server certificate it signed for `serverName` (90 days, SAN,
 * serverAuth, a CRL address): what a client that trusts `ca` accepts, as with a real CA.
 */
export async function makeCaSignedCert(dir: string, serverName: string): Promise<{ ca: string; cert: string; key: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const [ca, caKey, cert, key] = ['ca.pem', 'ca-key.pem', 'tls-cert.pem', 'tls-key.pem'].map((name) => join(dir, name)) as [
    string,
    string,
    string,
    string,
  ];
  const openssl = findProgram('openssl');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  await runOk(openssl, [
    'req',
    '-x509',
    ...ec,
    '-days',
    '2',
    '-subj',
    '/CN=Archway test CA',
    '-keyout',
    caKey,
    '-out',
    ca,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await runOk(openssl, [
    'req',
    '-x509',
    ...ec,
    '-days',
    '90',
    '-subj',
    `/CN=${serverName}`,
    '-keyout',
    key,
    '-out',
    cert,
    '-CA',
    ca,
    '-CAkey',
    caKey,
    '-addext',
    `subjectAltName=DNS:${serverName}`,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'keyUsage=critical,digitalSignature',
    '-addext',
    'extendedKeyUsage=serverAuth',
    // Public CAs name a CRL; testssl rates a certificate without one high. Nobody fetches it here.
    '-addext',
    'crlDistributionPoints=URI:http://ca.example.net/archway-test.crl',
  ]);
  return { ca, cert, key };
}

export interface PrivateTlsNginx {
  httpPort: number;
  httpsPort: number;
  accessLog: string;
  stop(): Promise<void>;
}

/** Moves a shipped TLS vhost's port 80/443 listen lines (every address) to 127.0.0.1:<free port>. */
async function onLoopbackPorts(vhost: string): Promise<{ vhost: string; httpPort: number; httpsPort: number }> {
  const httpPort = await freeLoopbackPort();
  const httpsPort = await freeLoopbackPort();
  // The portal vhost uses `http2 on;` (nginx >= 1.25.1); the downloads vhost, installed on Debian 12's
  // nginx 1.22, keeps `listen ... ssl http2`. Older nginx here gets the listen-parameter form for both.
  const modern = await nginxVersionAtLeast(1, 25, 1);
  const hasHttp2On = /^\s*http2 on;$/m.test(vhost);
  const http2 = hasHttp2On && modern ? '' : ' http2';
  const rewrites: Array<[RegExp, string]> = [
    [/^(\s*)listen 80;$/m, `$1listen 127.0.0.1:${httpPort};`],
    [/^(\s*)listen 443 ssl(?: http2)?;$/m, `$1listen 127.0.0.1:${httpsPort} ssl${http2};`],
    [/^\s*listen \[::\]:80;\n/m, ''],
    [/^\s*listen \[::\]:443 ssl(?: http2)?;\n/m, ''],
  ];
  if (hasHttp2On && !modern) rewrites.push([/^\s*http2 on;\n/m, '']);
  for (const [pattern, replacement] of rewrites) {
    if (!pattern.test(vhost)) throw new Error(`vhost no longer has ${pattern}`);
    vhost = vhost.replace(pattern, replacement);
  }
  return { vhost, httpPort, httpsPort };
}

/**
 * Starts nginx with the shipped portal vhost in front of an upstream on loopback. Only the listen
 * lines and the access log's path (/var/log/nginx/access.log) are rewritten.
 */
export async function startPortalNginx(options: {
  dir: string;
  upstreamPort: number;
  serverName: string;
  user?: string;
  /** Certificate and key to serve; a self-signed one for serverName by default. */
  tls?: { cert: string; key: string };
}): Promise<PrivateTlsNginx> {
  const dir = options.dir;
  for (const sub of ['', 'logs', 'tmp']) await mkdir(join(dir, sub), { recursive: true, mode: 0o755 });
  const tls = options.tls ?? (await makeSelfSignedCert(join(dir, 'tls'), options.serverName));
  const rendered = renderTemplate(readShipped('nginx/portal.conf.in'), {
    SERVER_NAME: options.serverName,
    TLS_CERT: tls.cert,
    TLS_KEY: tls.key,
    PORTAL_UPSTREAMS: `server 127.0.0.1:${options.upstreamPort};`,
  });
  const accessLog = join(dir, 'logs', 'access.log');
  // Without an access_log of its own the vhost would log to the http-level one: the same file.
  const { vhost, httpPort, httpsPort } = await onLoopbackPorts(
    rendered.replaceAll('access_log /var/log/nginx/access.log ', `access_log ${accessLog} `),
  );
  const vhostPath = join(dir, 'portal.conf');
  await writeFile(vhostPath, vhost, { mode: 0o644 });
  const configPath = join(dir, 'nginx.conf');
  const httpBody = `    access_log ${accessLog};\n    include ${vhostPath};`;
  await writeFile(configPath, mainConfig(dir, options.user ?? 'www-data', httpBody), { mode: 0o644 });
  const { stop } = await runNginx(dir, configPath, '127.0.0.1', [httpPort, httpsPort]);
  return { httpPort, httpsPort, accessLog, stop };
}

/** Starts nginx with the shipped downloads TLS vhost (downloads.conf.in around the server body). */
export async function startDownloadsTlsNginx(options: NginxOptions & { serverName: string }): Promise<PrivateTlsNginx> {
  const dir = options.dir;
  const { serverInclude, accessLog } = await prepareDownloads(options);
  const tls = await makeSelfSignedCert(join(dir, 'tls'), options.serverName);
  const rendered = renderTemplate(readShipped('nginx/downloads.conf.in'), {
    SERVER_NAME: options.serverName,
    TLS_CERT: tls.cert,
    TLS_KEY: tls.key,
    SERVER_INCLUDE: serverInclude,
    ACCESS_LOG: accessLog,
  });
  const { vhost, httpPort, httpsPort } = await onLoopbackPorts(rendered);
  const vhostPath = join(dir, 'downloads.conf');
  await writeFile(vhostPath, vhost, { mode: 0o644 });
  const configPath = join(dir, 'nginx.conf');
  const httpBody = `    access_log ${accessLog};\n    include ${join(dir, 'archway-http.conf')};\n    include ${vhostPath};`;
  await writeFile(configPath, mainConfig(dir, options.user ?? 'www-data', httpBody), { mode: 0o644 });
  const { stop } = await runNginx(dir, configPath, '127.0.0.1', [httpPort, httpsPort]);
  return { httpPort, httpsPort, accessLog, stop };
}
