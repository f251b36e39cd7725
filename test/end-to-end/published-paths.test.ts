/**
 * Nothing published names a folder of the machine that made it: samples, dataset images and the
 * model given by absolute paths (outside the config folder) show as names relative to the folder
 * they share, and the site and summaries hold no trace of any absolute path involved.
 */
import { cp, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { publishedModelSource, publishedNames } from '../../pipeline/data.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { runReport } from '../../pipeline/run.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

const TEXT = new Set(['.html', '.json', '.md', '.js', '.css', '.svg', '.txt', '.xml']);

async function textFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && TEXT.has(extname(e.name))) out.push(join(e.parentPath, e.name));
  }
  return out;
}

describe('published names', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('relative names stay; absolute ones become relative to the config folder or to the folder they share', () => {
    expect(publishedNames(['a/b.png', '/cfg/x/c.png', '/data/pets/cat/1.jpg', '/data/pets/dog/2.jpg'], '/cfg')).toEqual(['a/b.png', 'x/c.png', 'cat/1.jpg', 'dog/2.jpg']);
    expect(publishedNames(['/data/one.png'], '/cfg')).toEqual(['one.png']);
    expect(publishedModelSource('../models/m', '/cfg')).toBe('../models/m');
    expect(publishedModelSource('/cfg/models/m', '/cfg')).toBe('models/m');
    expect(publishedModelSource('/home/me/models/resnet/model.onnx', '/cfg')).toBe('resnet/model.onnx');
    expect(publishedModelSource('/home/me/models/resnet', '/cfg')).toBe('resnet');
    expect(publishedModelSource('https://example.org/m/model.json', '/cfg')).toBe('https://example.org/m/model.json');
  });

  it('a report on absolute paths publishes none of them', async () => {
    const p = await makeTinyProject();
    const elsewhere = await mkdtemp(join(tmpdir(), 'convlens-elsewhere-'));
    await cp(join(p.dir, 'images'), join(elsewhere, 'photos'), { recursive: true });
    await cp(join(p.dir, 'model'), join(elsewhere, 'weights', 'tiny'), { recursive: true });
    const abs = (...s: string[]) => join(elsewhere, ...s);
    await writeFile(join(elsewhere, 'list.csv'), `${abs('photos', 'circle', 'circle-1.png')},circle\n${abs('photos', 'square', 'square-1.png')},square\n`);
    await writeFile(p.config, [
      'release: r',
      `model: { path: ${abs('weights', 'tiny')}, labels: ${abs('weights', 'tiny', 'labels.txt')} }`,
      'data:',
      `  samples: { files: [${abs('photos', 'circle', 'circle-1.png')}, ${abs('photos', 'square', 'square-1.png')}] }`,
      `  dataset: { list: ${abs('list.csv')} }`,
      'compute: { backend: wasm, workers: 0 }',
      'metrics: { randomization: { enabled: false } }',
      'methods:',
      '  class-visualization: { enabled: false }',
      '  embedding: { algorithm: pca }',
      '',
    ].join('\n'));
    const { manifest, releaseDir, siteDir } = await runReport({ configFile: p.config, logger: new MemoryLogger() });
    expect(manifest.samples.map((s) => s.source)).toEqual(['circle/circle-1.png', 'square/square-1.png']);
    expect(manifest.samples.map((s) => s.labelName)).toEqual(['circle', 'square']);
    expect(manifest.model.source).toBe('tiny');
    const traces = [elsewhere, p.dir, process.cwd(), tmpdir()];
    const files = [...await textFiles(releaseDir), ...await textFiles(siteDir!)];
    expect(files.some((f) => f.endsWith('summary.md'))).toBe(true);
    expect(files.some((f) => f.endsWith('index.html'))).toBe(true);
    const found: string[] = [];
    for (const f of files) {
      const text = await readFile(f, 'utf8');
      for (const t of traces) if (text.includes(t)) found.push(`${f}: ${t}`);
    }
    expect(found).toEqual([]);
  }, 120_000);
});
