/**
 * Same answer twice: a reduced demo (the demo CNN, its six sample digits, 200 dataset digits,
 * every method and metric) run twice gives byte-identical .npy and data files and the same
 * manifest apart from dates and timings (summary.md / .html carry the date and are left out);
 * every random draw starts from compute.seed: another seed changes the SmoothGrad maps, while maps
 * that draw nothing at random stay the same.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { exportDemoImages } from '../../pipeline/demo/digits.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { runReport } from '../../pipeline/run.ts';
import { listFiles } from '../helpers/files.ts';

const MODEL = resolve(import.meta.dirname, '../../models/demo-mnist');

/** A value with its timings left out (keys that say seconds or milliseconds): those differ run to run. */
function untimed(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(untimed);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => !/(^s|S)econds$|^ms$/.test(k)).map(([k, x]) => [k, untimed(x)]));
  return v;
}

async function run(root: string, seed: number, name: string) {
  const config = join(root, `${name}.yaml`);
  await writeFile(config, [
    `release: ${name}`,
    `model: { path: ${MODEL}, labels: ${join(MODEL, 'labels.txt')} }`,
    'input: { scale: 0.00392156862745098 }',
    'data:',
    '  samples: { folder: digits/samples }',
    '  dataset: { folder: digits/dataset, limit: 200 }',
    `compute: { backend: wasm, workers: 1, seed: ${seed} }`,
    `output: { dir: out-${name} }`,
    'methods:',
    '  integrated-gradients: { steps: 8 }',
    '  smoothgrad: { n: 4 }',
    '  class-visualization: { steps: 8, classes: [0, 1] }',
    '  embedding: { algorithm: tsne, iterations: 100 }',
    'metrics: { deletion: { steps: 5 }, insertion: { steps: 5 }, randomization: { maxSteps: 2 } }',
  ].join('\n'));
  const { releaseDir } = await runReport({ configFile: config, logger: silentLogger, site: false });
  const all = (await listFiles(releaseDir)).filter((f) => !f.endsWith('manifest.json') && !/summary\.(md|html)$/.test(f));
  const bytes = new Map(await Promise.all(all.map(async (f) => [relative(releaseDir, f), await readFile(f)] as [string, Buffer])));
  const manifest = JSON.parse(await readFile(join(releaseDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  for (const k of ['createdAt', 'timings', 'release', 'configHash']) delete manifest[k];
  return { bytes, manifest };
}

describe('reproducible runs', () => {
  let root: string;
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    root = await mkdtemp(join(tmpdir(), 'convlens-repro-'));
    await exportDemoImages(join(root, 'digits'));
  }, 120_000);

  it('a reduced demo run twice: every .npy, data file and picture byte for byte, and the manifest', async () => {
    const a = await run(root, 0, 'a');
    const b = await run(root, 0, 'b');
    const npy = [...a.bytes.keys()].filter((k) => k.endsWith('.npy'));
    expect(npy.length).toBeGreaterThan(50);
    expect([...b.bytes.keys()].sort()).toEqual([...a.bytes.keys()].sort());
    for (const [path, bytes] of a.bytes) {
      if (path.endsWith('.json')) expect(untimed(JSON.parse(b.bytes.get(path)!.toString())), path).toEqual(untimed(JSON.parse(bytes.toString())));
      else expect(b.bytes.get(path)!.equals(bytes), path).toBe(true);
    }
    expect(untimed(b.manifest)).toEqual(untimed(a.manifest));

    const c = await run(root, 7, 'c');
    const differs = (p: string) => !c.bytes.get(p)!.equals(a.bytes.get(p)!);
    const smooth = npy.filter((p) => p.startsWith('smoothgrad/'));
    expect(smooth.length).toBeGreaterThan(0);
    expect(smooth.every(differs)).toBe(true);
    // maps that draw nothing at random are the same under another seed
    expect(npy.filter((p) => p.startsWith('saliency/')).some(differs)).toBe(false);
  }, 300_000);
});
