// The import rules of docs/ARCHITECTURE.md, checked on the real import graph (dependency-cruiser):
// the rules in .dependency-cruiser.cjs, plus no cycle between folders of src/.
// Usage: node scripts/check-boundaries.mjs [--graph | --write-graph]   (print the folder graph as Mermaid, or redraw it in the doc)
import { cruise } from 'dependency-cruiser';
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const srcDir = 'src';
process.chdir(root);
const ruleSet = createRequire(import.meta.url)(path.join(root, '.dependency-cruiser.cjs'));
const result = await cruise([srcDir], { validate: true, ruleSet, tsPreCompilationDeps: true, outputType: 'json' }, undefined, {
  tsConfig: { fileName: 'tsconfig.json' },
});
const output = typeof result.output === 'string' ? JSON.parse(result.output) : result.output;

/** src/auth/x.ts -> auth; a file at the top (src/app.ts) is a node of its own: app */
const folderOf = (file) =>
  path
    .relative(srcDir, file)
    .split(path.sep)[0]
    .replace(/[.]ts$/, '');
const edges = new Map();
for (const mod of output.modules) {
  if (!mod.source.startsWith(srcDir)) continue;
  for (const dep of mod.dependencies) {
    if (!dep.resolved.startsWith(srcDir) || dep.dependencyTypes.includes('type-only')) continue;
    const [from, to] = [folderOf(mod.source), folderOf(dep.resolved)];
    if (from === to) continue;
    if (!edges.has(from)) edges.set(from, new Map());
    const examples = edges.get(from);
    if (!examples.has(to)) examples.set(to, `${mod.source} -> ${dep.resolved}`);
  }
}

/** Every cycle between folders, each once, with one import per step as the example. */
function folderCycles() {
  const found = new Map();
  const walk = (start, node, trail) => {
    for (const next of edges.get(node)?.keys() ?? []) {
      if (next === start) {
        const key = [...trail].sort().join(' ');
        if (!found.has(key)) found.set(key, [...trail, start]);
      } else if (!trail.includes(next) && next > start) walk(start, next, [...trail, next]);
    }
  };
  for (const start of edges.keys()) walk(start, start, [start]);
  return [...found.values()];
}

const graph = [...edges]
  .sort(([a], [b]) => a.localeCompare(b))
  .flatMap(([from, tos]) => [...tos.keys()].sort().map((to) => `  ${from} --> ${to}`));
const mermaid = ['```mermaid', 'flowchart LR', ...graph, '```'].join('\n');
const doc = path.join(root, 'docs', 'ARCHITECTURE.md');
const [START, END] = ['<!-- graph:start -->', '<!-- graph:end -->'];
const text = readFileSync(doc, 'utf8');
const drawn = text.slice(text.indexOf(START) + START.length, text.indexOf(END)).trim();
if (process.argv.includes('--graph')) {
  console.log(mermaid);
  process.exit(0);
}
if (process.argv.includes('--write-graph')) {
  writeFileSync(doc, `${text.slice(0, text.indexOf(START) + START.length)}\n${mermaid}\n${text.slice(text.indexOf(END))}`);
  process.exit(0);
}

let problems = 0;
if (drawn !== mermaid) {
  problems++;
  console.log('docs/ARCHITECTURE.md: the folder graph is not the one the code has; run node scripts/check-boundaries.mjs --write-graph');
}
for (const v of output.summary.violations) {
  problems++;
  console.log(`${v.rule.name}: ${v.from} -> ${v.to}${v.cycle ? ` (cycle: ${v.cycle.map((c) => c.name ?? c).join(' -> ')})` : ''}`);
}
for (const cycle of folderCycles()) {
  problems++;
  console.log(`folder cycle: ${cycle.join(' -> ')}`);
  for (let i = 0; i + 1 < cycle.length; i++) console.log(`    e.g. ${edges.get(cycle[i]).get(cycle[i + 1])}`);
}
console.log(problems === 0 ? `boundaries: ${output.summary.totalCruised} modules, no violations` : `boundaries: ${problems} violations`);
process.exit(problems === 0 ? 0 : 1);
