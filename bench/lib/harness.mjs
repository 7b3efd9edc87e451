// What the benchmarks share: their options, and the TypeScript test harness bundled so a plain script can use it.
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

export const repo = fileURLToPath(new URL('../..', import.meta.url));

/** A `--name value` option of this run, or its default; a number unless the default is a string. */
export function option(name, fallback) {
  const args = process.argv.slice(2);
  const i = args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  return typeof fallback === 'string' ? args[i + 1] : Number(args[i + 1]);
}

/** Bundles `export ... from` lines of test/ modules into dist/bench/<name>.mjs and imports it. */
export async function loadHarness(name, exportLines) {
  const outfile = join(repo, 'dist', 'bench', `${name}.mjs`);
  await build({
    stdin: { contents: exportLines.join('\n'), resolveDir: repo, loader: 'ts' },
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    logLevel: 'error',
  });
  return import(pathToFileURL(outfile).href);
}

/** The p-th percentile of the values. */
export function percentile(values, p) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
