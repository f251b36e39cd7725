/**
 * Runs the benchmarks (`bench/<name>.bench.ts`), each in its own process (tfjs state is per
 * process), in name order; stops at the first that fails.
 *
 *   npm run bench                        every benchmark, with its default arguments
 *   npm run bench -- metrics             only bench/metrics.bench.ts
 *   npm run bench -- metrics 1           one benchmark, with its own arguments
 *
 * Each benchmark also runs alone: `npx tsx bench/<name>.bench.ts [args]`.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const dir = import.meta.dirname;
const names = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).map((f) => f.slice(0, -'.bench.ts'.length)).sort();
const args = process.argv.slice(2);
const chosen = args.filter((a) => names.includes(a));
const rest = args.filter((a) => !names.includes(a));
if (rest.length && chosen.length !== 1) {
  console.error(`bench: arguments (${rest.join(' ')}) go to one benchmark: name it first, one of ${names.join(', ')}`);
  process.exit(1);
}
for (const name of chosen.length ? chosen : names) {
  console.log(`\n######## bench/${name}.bench.ts ${rest.join(' ')}\n`);
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(dir, `${name}.bench.ts`), ...rest], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
