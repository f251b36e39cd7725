import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportDemoImages } from './digits.ts';

/**
 * `tsx pipeline/demo/export-digits.ts [root]`: writes the demo TEST digits as PNGs (see
 * exportDemoImages). The default root, `output/demo-data`, is relative to the repository, not cwd.
 */
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const root = process.argv[2] ? resolve(process.argv[2]) : resolve(repoRoot, 'output/demo-data');

const start = performance.now();
const counts = await exportDemoImages(root);
const secs = ((performance.now() - start) / 1000).toFixed(1);
console.log(
  `${counts.written ? 'wrote' : 'already complete:'} ${counts.dataset} test digits and ${counts.samples} samples in ${root}` +
    ` (per class ${counts.perClass.join('/')}, ${secs}s)`,
);
