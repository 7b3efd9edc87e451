// The root program is small on purpose: it may import the shared protocol and Node's built-ins, nothing of the portal.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');
const DISPATCHER = join(SRC, 'dispatcher');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('the dispatcher source', () => {
  it('imports only src/protocol, its own files and node: built-ins, and the front door reaches the engine only through its index', () => {
    const outside: string[] = [];
    for (const file of sources(DISPATCHER)) {
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '([^']+)'/gm)) {
        if (spec!.startsWith('node:')) continue;
        const target = relative(SRC, resolve(dirname(file), spec!));
        const ok =
          target.startsWith('protocol/') ||
          (target.startsWith('dispatcher/engine/') && (file.includes('/engine/') || target === 'dispatcher/engine/index.js')) ||
          (target.startsWith('dispatcher/') && !target.startsWith('dispatcher/engine/') && !file.includes('/engine/'));
        if (!ok) outside.push(`${relative(SRC, file)} -> ${target}`);
      }
    }
    expect(sources(DISPATCHER).length).toBeGreaterThan(20);
    expect(outside).toEqual([]);
  });
});
