// Runs one benchmark by name (`npm run bench -- first-look-start`) or lists them; each prints its own figures.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = path.dirname(fileURLToPath(import.meta.url));
const names = readdirSync(dir)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .map((f) => f.slice(0, -4))
  .sort();
const [name, ...rest] = process.argv.slice(2);
if (name === undefined || !names.includes(name)) {
  console.log(`Usage: npm run bench -- <name> [options]\nBenchmarks: ${names.join(', ')}`);
  process.exit(name === undefined ? 0 : 64);
}
const result = spawnSync(process.execPath, [path.join(dir, `${name}.mjs`), ...rest], { stdio: 'inherit' });
process.exit(result.status ?? 1);
