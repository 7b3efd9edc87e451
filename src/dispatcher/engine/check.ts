// check: the install self-check; one finding per fact, printed one line each, failing when any finding is bad.
import { closeSync, lstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, sep } from 'node:path';
import type { CheckFinding } from '../../protocol/index.js';
import type { DispatcherConfig } from './config.js';
import { groupId } from './group.js';
import { rateFindings } from './limits.js';

function stat(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

/** The dispatcher's #! line must name its interpreter by absolute path: under /usr/bin/env, PATH picks it. */
function interpreterFinding(
  dispatcherFile: string | undefined,
  owner: number,
  add: (ok: boolean, what: string, detail: string) => void,
): void {
  let first: string;
  try {
    const fd = openSync(dispatcherFile ?? '', 'r');
    try {
      const buf = Buffer.alloc(256);
      first = buf.toString('utf8', 0, readSync(fd, buf, 0, buf.length, 0)).split('\n')[0] ?? '';
    } finally {
      closeSync(fd);
    }
  } catch {
    return add(false, 'dispatcher interpreter', `${dispatcherFile ?? '(unknown)'} is not readable`);
  }
  const m = /^#!(\/[^\s]+)$/.exec(first);
  if (!m || basename(m[1]!) === 'env')
    return add(false, 'dispatcher interpreter', `first line ${JSON.stringify(first.slice(0, 80))} (want #!/absolute/path/to/node, no env)`);
  const st = stat(m[1]!);
  const ok = st !== null && st.isFile() && (st.uid === 0 || st.uid === owner) && (st.mode & 0o022) === 0;
  add(
    ok,
    'dispatcher interpreter',
    `${m[1]} ${ok ? 'is owned by root and not writable by others' : 'is missing, a symlink, not owned by root or writable by others'}`,
  );
}

export function runCheck(cfg: DispatcherConfig, dispatcherFile: string | undefined = process.argv[1]): { findings: CheckFinding[] } {
  const findings: CheckFinding[] = [];
  // In production that is root (via sudo); a development copy is checked against its own user.
  const owner = typeof process.getuid === 'function' ? process.getuid() : 0;
  const add = (ok: boolean, what: string, detail: string) => findings.push({ ok, what, detail });

  // The dispatcher runs as root from sudo: anyone able to change it (or a parent directory) is root.
  const rootOnly = (what: string, path: string | undefined, allowed: number) => {
    const st = path ? stat(path) : null;
    if (!path || !st) return add(false, what, `${path ?? '(unknown)'} is missing`);
    const extra = st.mode & 0o7777 & ~allowed;
    add(
      st.uid === owner && extra === 0 && !st.isSymbolicLink(),
      what,
      `${path} owner uid ${st.uid}, mode ${octal(st.mode)} (want uid ${owner}, at most ${octal(allowed)})`,
    );
  };
  rootOnly('dispatcher file', dispatcherFile, 0o700);
  // Whoever can write a directory above the dispatcher can swap the file for their own.
  if (dispatcherFile) {
    const weak: string[] = [];
    for (let d = dirname(dispatcherFile); ; d = dirname(d)) {
      const st = stat(d);
      if (st && ((st.uid !== 0 && st.uid !== owner) || (st.mode & 0o022) !== 0) && !((st.mode & 0o1000) !== 0 && st.uid === 0))
        weak.push(`${d} (uid ${st.uid}, mode ${octal(st.mode)})`);
      if (d === dirname(d)) break;
    }
    add(
      weak.length === 0,
      'dispatcher directories',
      weak.length === 0
        ? 'every directory above the dispatcher is owned by root (or this user) and not writable by others'
        : `writable by others: ${weak.join(', ')}`,
    );
  }
  interpreterFinding(dispatcherFile, owner, add);
  rootOnly('dispatcher configuration', cfg.configPath, 0o600);
  rootOnly('secure link secret', cfg.secureLinkSecretFile, 0o600);
  const secret = stat(cfg.secureLinkSecretFile);
  if (secret) add(secret.size >= 17, 'secure link secret length', `${secret.size} bytes (want at least 16 characters)`);

  const dir = (what: string, path: string, maxMode: number) => {
    const st = stat(path);
    if (!st || !st.isDirectory()) return add(false, what, `${path} is not a directory`);
    const extra = st.mode & 0o7777 & ~maxMode;
    add(
      st.uid === owner && extra === 0,
      what,
      `${path} owner uid ${st.uid}, mode ${octal(st.mode)} (want uid ${owner}, at most ${octal(maxMode)})`,
    );
  };
  dir('backup root', cfg.backupRoot, 0o755);
  dir('archive root', cfg.archiveRoot, 0o755);
  // nginx only traverses LINK_ROOT: a listing would show every live link's random directory name.
  dir('link root', cfg.linkRoot, 0o710);
  dir('state directory', cfg.stateDir, 0o700);

  // Overlapping roots would let sweep delete backups or nginx serve state files.
  const roots = { backupRoot: cfg.backupRoot, archiveRoot: cfg.archiveRoot, linkRoot: cfg.linkRoot, stateDir: cfg.stateDir };
  const names = Object.keys(roots) as (keyof typeof roots)[];
  let overlap = '';
  for (const a of names)
    for (const b of names)
      if (a !== b && (roots[a] === roots[b] || (roots[b] + sep).startsWith(roots[a] + sep))) overlap ||= `${b} is inside ${a}`;
  add(overlap === '', 'roots are separate', overlap || 'no root contains another');

  add(
    groupId(cfg.nginxGroup) !== null,
    'nginx group',
    `group ${cfg.nginxGroup} ${groupId(cfg.nginxGroup) === null ? 'does not exist' : 'exists'}`,
  );
  for (const [what, path] of [
    ['tar', cfg.tarPath],
    ['nice', cfg.nicePath],
    ['ionice', cfg.ionicePath],
    ['find', cfg.findPath],
  ] as const) {
    let ok: boolean;
    try {
      const st = statSync(path);
      ok = st.isFile() && (st.mode & 0o111) !== 0 && (st.mode & 0o022) === 0;
    } catch {
      ok = false;
    }
    add(
      ok,
      `${what} program`,
      `${path} ${ok ? 'is executable and not writable by others' : 'is missing, not executable or writable by others'}`,
    );
  }
  // watch (root) believes this log: nothing but nginx's root-opened descriptor may write it, so
  // neither the file nor its directory may belong to or be writable by anyone else.
  dir('download log directory', dirname(cfg.downloadLog), 0o755);
  const logSt = stat(cfg.downloadLog);
  const logOk = logSt === null || (logSt.isFile() && logSt.uid === owner && (logSt.mode & 0o022) === 0);
  add(
    logOk,
    'download log',
    logSt
      ? `${cfg.downloadLog} owner uid ${logSt.uid}, mode ${octal(logSt.mode)} (want uid ${owner}, not writable by others)`
      : `${cfg.downloadLog} does not exist yet (nginx creates it on start)`,
  );
  findings.push(...rateFindings(cfg));
  return { findings };
}

/** Writes one line per finding to stderr, which the installer reads; true when every finding is good. */
export function reportFindings(result: unknown): boolean {
  const { findings } = result as { findings: CheckFinding[] };
  for (const f of findings) process.stderr.write(`${f.ok ? 'ok  ' : 'BAD '} ${f.what}: ${f.detail}\n`);
  return findings.every((f) => f.ok);
}
