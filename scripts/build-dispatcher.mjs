// Bundles the dispatcher into one root-installable file that needs nothing but Node's built-ins, plus its test build.
import { build } from 'esbuild';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outDir = join(root, 'dist', 'dispatcher');
mkdirSync(outDir, { recursive: true });

// The shipped bundle (installed on backup hosts) and a test bundle that keeps the test seams
// (src/dispatcher/engine/test-seams.ts); only the tests run the second one.
const bundles = [
  { file: 'archway-dispatcher.mjs', testSeams: false },
  { file: 'archway-dispatcher.test-seams.mjs', testSeams: true },
];

for (const { file, testSeams } of bundles) {
  const outfile = join(outDir, file);
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
    define: { __TEST_SEAMS__: String(testSeams) },
    // Folds `if (!SEAMS)` and drops the code behind it; names are kept, so the bundle stays readable.
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
  check(outfile, testSeams);
}

/** The backup host has no node_modules: refuse a bundle that imports anything else, or a shipped one with a seam. */
function check(outfile, testSeams) {
  const text = readFileSync(outfile, 'utf8');
  const imports = [
    ...text.matchAll(
      /(?:^|[\s;])(?:import|export)\s*(?:[^'"]*?from\s*)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|require\(\s*["']([^"']+)["']\s*\)/g,
    ),
  ].map((m) => m[1] ?? m[2] ?? m[3]);
  const foreign = imports.filter((s) => !s.startsWith('node:'));
  if (foreign.length > 0) {
    console.error(`build-dispatcher: ${outfile} imports non-built-in modules: ${foreign.join(', ')}`);
    process.exit(1);
  }
  const seams = ['__TEST_SEAMS__', 'ARCHWAY_DISPATCHER_NOW_OFFSET', 'ARCHWAY_DISPATCHER_FAKE_FREE_BYTES'].filter((s) => text.includes(s));
  if (!testSeams && seams.length > 0) {
    console.error(`build-dispatcher: the shipped bundle still holds test seams: ${seams.join(', ')}`);
    process.exit(1);
  }
  console.log(`build-dispatcher: wrote ${outfile} (${text.length} bytes, imports: ${[...new Set(imports)].join(' ')})`);
}
