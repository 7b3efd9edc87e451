// Bundles the dispatcher into one root-installable file that needs nothing but Node's built-ins.
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'dispatcher', 'archway-dispatcher.mjs');
mkdirSync(dirname(outfile), { recursive: true });

await build({
  entryPoints: [join(root, 'src', 'dispatcher', 'main.ts')],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node18',
  banner: { js: '#!/usr/bin/env node' },
  // Every node: built-in stays an import; anything else must be bundled or the build fails below.
  external: [...builtinModules.map((m) => `node:${m}`)],
  legalComments: 'none',
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);

// The backup host has no node_modules: refuse to produce a bundle that imports anything else.
const text = readFileSync(outfile, 'utf8');
const imports = [
  ...text.matchAll(
    /(?:^|[\s;])(?:import|export)\s*(?:[^'"]*?from\s*)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g,
  ),
].map((m) => m[1] ?? m[2] ?? m[3]);
const foreign = imports.filter((s) => !s.startsWith('node:'));
if (foreign.length > 0) {
  console.error(`build-dispatcher: bundle imports non-built-in modules: ${foreign.join(', ')}`);
  process.exit(1);
}
console.log(`build-dispatcher: wrote ${outfile} (${text.length} bytes, imports: ${[...new Set(imports)].join(' ')})`);
