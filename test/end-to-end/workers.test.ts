/**
 * The release does not depend on how many worker threads computed it: a whole report (every
 * method, the dataset passes and the metrics) with compute.workers 0, 1 and 2 gives byte-identical
 * .npy files and data files, and the same manifest apart from dates and timings.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { runReport } from '../../pipeline/run.ts';
import { listFiles } from '../helpers/files.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

describe('worker threads', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('compute.workers 0, 1 and 2 write the same maps, data and manifest', async () => {
    const releases: { npy: Map<string, Buffer>; json: Map<string, Buffer>; manifest: Record<string, unknown> }[] = [];
    for (const workers of [0, 1, 2]) {
      const project = await makeTinyProject();
      await writeFile(project.config, [
        'release: tiny',
        'model: { path: model, labels: model/labels.txt }',
        'data:',
        '  samples: { folder: images }',
        '  dataset: { folder: images }',
        `compute: { backend: wasm, workers: ${workers}, batchSize: 2 }`,
        'methods:',
        '  integrated-gradients: { steps: 6 }',
        '  smoothgrad: { n: 3 }',
        '  class-visualization: { steps: 3 }',
        '  embedding: { algorithm: pca }',
      ].join('\n'));
      const logger = new MemoryLogger();
      const { releaseDir } = await runReport({ configFile: project.config, logger, site: false });
      // the workers did take work (per-sample methods, the dataset pass, the curves)
      const jobs = /workers: jobs done ([\d, ]+)/.exec(logger.text())?.[1].split(', ').map(Number) ?? [];
      expect(jobs).toHaveLength(workers);
      for (const j of jobs) expect(j).toBeGreaterThan(0);
      const all = await listFiles(releaseDir);
      const read = async (ext: string) => new Map(await Promise.all(all.filter((f) => f.endsWith(ext) && !f.endsWith('manifest.json')).map(async (f) => [relative(releaseDir, f), await readFile(f)] as [string, Buffer])));
      const manifest = JSON.parse(await readFile(join(releaseDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      delete manifest.createdAt;
      delete manifest.timings;
      releases.push({ npy: await read('.npy'), json: await read('.json'), manifest });
    }
    const [base, ...others] = releases;
    expect(base.npy.size).toBeGreaterThan(30);
    for (const r of others) {
      expect([...r.npy.keys()].sort()).toEqual([...base.npy.keys()].sort());
      for (const [path, bytes] of base.npy) expect(r.npy.get(path)!.equals(bytes), path).toBe(true);
      expect([...r.json.keys()].sort()).toEqual([...base.json.keys()].sort());
      for (const [path, bytes] of base.json) expect(r.json.get(path)!.toString(), path).toBe(bytes.toString());
      expect(r.manifest).toEqual(base.manifest);
    }
  }, 300_000);
});
