// The installed file itself: a single bundle of Node built-ins, a strict config, and the install self-check.
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUNDLE, installDispatcher, makeWorld, type World } from './world.js';

describe('the bundle', () => {
  it('is one executable file that imports only node: built-ins', () => {
    const text = readFileSync(BUNDLE, 'utf8');
    expect(text.startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(statSync(BUNDLE).mode & 0o777).toBe(0o755);
    const specifiers = [
      ...text.matchAll(
        /\bfrom\s*["']([^"']+)["']|\bimport\s*\(\s*["']([^"']+)["']|\brequire\s*\(\s*["']([^"']+)["']|^import\s*["']([^"']+)["']/gm,
      ),
    ].map((m) => m[1] ?? m[2] ?? m[3] ?? m[4]);
    expect(specifiers.length).toBeGreaterThan(0);
    expect(specifiers.filter((s) => !s!.startsWith('node:'))).toEqual([]);
  });
});

describe('configuration', () => {
  it('refuses to run on a config others can write', () => {
    const w = makeWorld();
    chmodSync(w.configPath, 0o666);
    const r = w.run('ping', {});
    expect(r).toMatchObject({
      code: 2,
      answer: {
        ok: false,
        error: { code: 'internal', reason: 'misconfigured', message: 'the backup host is not configured correctly; see the call log' },
      },
    });
  });

  it('refuses a config with unknown or missing fields and names them in stderr, not to the caller', () => {
    const w = makeWorld();
    writeFileSync(w.configPath, JSON.stringify({ backupRoot: 'relative/path', colour: 'blue' }), { mode: 0o600 });
    const r = w.run('ping', {});
    expect(r.code).toBe(2);
    expect(r.answer).toEqual({
      ok: false,
      error: { code: 'internal', reason: 'misconfigured', message: 'the backup host is not configured correctly; see the call log' },
    });
    expect(r.stderr).toContain('unknown field colour');
    expect(r.stderr).toContain('backupRoot must be an absolute path');
  });

  it('answers ping with the roots and free space', () => {
    const w = makeWorld();
    const r = w.run('ping', {});
    expect(r).toMatchObject({
      code: 0,
      answer: {
        ok: true,
        result: {
          version: '0.6.1',
          time: expect.any(String),
          roots: { backup: true, archive: true, link: true },
          freeBytes: expect.any(Number),
        },
      },
    });
  });
});

describe('check', () => {
  let w: World;
  let installed: string;
  const check = () => {
    const r = spawnSync(installed, ['check'], {
      env: { PATH: process.env.PATH, ARCHWAY_DISPATCHER_CONFIG: w.configPath },
      encoding: 'utf8',
    });
    return { code: r.status, answer: JSON.parse(r.stdout), stderr: r.stderr };
  };

  beforeAll(() => {
    w = makeWorld();
    installed = installDispatcher(w);
    writeFileSync(w.downloadLog, '');
  });

  it('passes a correct install and prints one line per finding', () => {
    const r = check();
    expect(r.code).toBe(0);
    expect(r.answer.result.findings.every((f: { ok: boolean }) => f.ok)).toBe(true);
    expect(r.stderr.trim().split('\n')).toHaveLength(r.answer.result.findings.length);
    expect(r.stderr).toMatch(/^ok {3}secure link secret: .* mode 0600/m);
  });

  it('flags a secret file others can read, and a dispatcher others can write', () => {
    chmodSync(join(w.dir, 'secure-link.secret'), 0o644);
    chmodSync(installed, 0o775);
    const r = check();
    chmodSync(join(w.dir, 'secure-link.secret'), 0o600);
    chmodSync(installed, 0o700);
    expect(r.code).toBe(1);
    const bad = r.answer.result.findings.filter((f: { ok: boolean }) => !f.ok).map((f: { what: string }) => f.what);
    expect(bad).toEqual(['dispatcher file', 'secure link secret']);
    expect(r.stderr).toMatch(/^BAD {2}secure link secret: .* mode 0644/m);
  });

  it('flags a dispatcher run through /usr/bin/env, a link root nginx could list, and a download log others can write', () => {
    const text = readFileSync(installed, 'utf8');
    writeFileSync(installed, `#!/usr/bin/env node${text.slice(text.indexOf('\n'))}`);
    chmodSync(w.linkRoot, 0o750);
    chmodSync(w.downloadLog, 0o666);
    const bad = () => check().answer.result.findings.filter((f: { ok: boolean }) => !f.ok);
    let found;
    try {
      // Run through node itself: the file's own #! line is what check reads.
      const r = spawnSync(process.execPath, [installed, 'check'], {
        env: { PATH: process.env.PATH, ARCHWAY_DISPATCHER_CONFIG: w.configPath },
        encoding: 'utf8',
      });
      expect(r.status).toBe(1);
      found = JSON.parse(r.stdout).result.findings.filter((f: { ok: boolean }) => !f.ok);
    } finally {
      writeFileSync(installed, text);
      chmodSync(w.linkRoot, 0o710);
      chmodSync(w.downloadLog, 0o644);
    }
    expect(found).toEqual([
      { ok: false, what: 'dispatcher interpreter', detail: 'first line "#!/usr/bin/env node" (want #!/absolute/path/to/node, no env)' },
      { ok: false, what: 'link root', detail: `${w.linkRoot} owner uid 0, mode 0750 (want uid 0, at most 0710)` },
      { ok: false, what: 'download log', detail: `${w.downloadLog} owner uid 0, mode 0666 (want uid 0, not writable by others)` },
    ]);
    expect(bad()).toEqual([]);
  });

  it('flags roots that overlap', () => {
    const cfg = JSON.parse(readFileSync(w.configPath, 'utf8'));
    writeFileSync(w.configPath, JSON.stringify({ ...cfg, linkRoot: join(cfg.backupRoot, 'links') }), { mode: 0o600 });
    const r = check();
    writeFileSync(w.configPath, JSON.stringify(cfg), { mode: 0o600 });
    expect(r.code).toBe(1);
    expect(r.answer.result.findings.find((f: { what: string }) => f.what === 'roots are separate')).toEqual({
      ok: false,
      what: 'roots are separate',
      detail: 'linkRoot is inside backupRoot',
    });
  });
});
