import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { dataFileSchema, DatasetPredictionsFile, EmbeddingFile, MetricsFile, parseDataFile } from '../../pipeline/data-files.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import type { Manifest } from '../../pipeline/manifest.ts';
import { runReport } from '../../pipeline/run.ts';
import { buildSite } from '../../pipeline/site.ts';
import { CHEAP_RUN_YAML } from '../helpers/cheap-config.ts';
import { decodeEntities } from '../helpers/html.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

/**
 * The site built from real pipeline output (not a hand-written manifest): the tiny project with a
 * dataset of 9 images, so dataset predictions, the embedding, top patches and the metrics exist.
 * Every data file matches its schema (pipeline/data-files.ts), every page that reads one shows its
 * content, and a data file whose shape drifts (a renamed field) stops the site build with an error
 * naming the file and the field, leaving the previous site as it was.
 */
const RELEASE = 'tiny';
let outputDir: string;
let releaseDir: string;
let manifest: Manifest;
let pages: Map<string, string>;
const logger = new MemoryLogger();

async function readPages(siteDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await readdir(siteDir, { recursive: true, withFileTypes: true })) {
    const f = relative(siteDir, join(e.parentPath, e.name)).split(sep).join('/');
    if (e.isFile() && f.endsWith('.html') && !f.startsWith('artifacts/')) out.set(f, await readFile(join(siteDir, f), 'utf8'));
  }
  return out;
}

/** A 16x16 picture of class `cls` (a disc, a square or stripes), moved by `shift` pixels. */
async function picture(file: string, cls: number, shift: number): Promise<void> {
  const px = Buffer.alloc(16 * 16 * 3);
  for (let p = 0; p < 256; p++) {
    const x = (p % 16) - shift;
    const y = Math.floor(p / 16) - shift;
    const on = cls === 0 ? (x - 7) ** 2 + (y - 7) ** 2 < 20 : cls === 1 ? x > 3 && x < 11 && y > 3 && y < 11 : x % 4 < 2;
    px.fill(on ? 220 - 20 * shift : 30 + 10 * shift, p * 3, p * 3 + 3);
  }
  await mkdir(join(file, '..'), { recursive: true });
  await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(file);
}

const dataArtifact = (method: string) => manifest.artifacts.find((a) => a.method === method && a.kind === 'data')!;
const readJson = async (releasePath: string) => JSON.parse(await readFile(join(releaseDir, releasePath), 'utf8')) as unknown;

beforeAll(async () => {
  await initBackend('wasm', silentLogger);
  const p = await makeTinyProject();
  for (const [c, name] of p.classes.entries()) for (const shift of [0, 1, 2]) await picture(join(p.dir, 'dataset', name, `${name}-${shift}.png`), c, shift);
  await writeFile(p.config, [
    `release: ${RELEASE}`,
    'model: { path: model, labels: model/labels.txt, name: Tiny test CNN }',
    'data:',
    '  samples: { folder: images }',
    '  dataset: { folder: dataset }',
    ...CHEAP_RUN_YAML,
    '  class-visualization: { enabled: false }',
    '  embedding: { algorithm: pca }',
    '  top-patches: { channels: 2, k: 2 }',
    '',
  ].join('\n'));
  outputDir = p.outputDir;
  ({ manifest, releaseDir } = await runReport({ configFile: p.config, logger, site: false }));
  const built = await buildSite({ outputDir, release: RELEASE, base: '/', logger });
  pages = await readPages(built.siteDir);
}, 300_000);

describe('the site built from a real release', () => {
  it('has a schema for every data file the pipeline writes, and every file matches it', async () => {
    const data = manifest.artifacts.filter((a) => a.kind === 'data');
    expect([...new Set(data.map((a) => a.method))].sort()).toEqual(['dataset-predictions', 'embedding', 'metrics', 'model-summary', 'top-patches']);
    for (const a of data) {
      const schema = dataFileSchema(a);
      expect(schema, a.path).toBeDefined();
      expect(() => parseDataFile(schema!, null, a.path)).toThrow(a.path);
      parseDataFile(schema!, await readJson(a.path), a.path);
    }
  });

  it('lists the dataset predictions on the classes pages', async () => {
    const file = parseDataFile(DatasetPredictionsFile, await readJson(dataArtifact('dataset-predictions').path), 'predictions');
    expect(file.count).toBe(9);
    const index = pages.get('classes/index.html')!;
    expect(index).toContain(`Top-1 accuracy ${(file.accuracy! * 100).toFixed(1)} %`);
    expect(index).toContain(`on ${file.labelled} labelled dataset images`);
    const examples = file.perClass.flatMap((pc) => [...pc.mostSure, ...pc.leastSure].map((e) => ({ cls: pc.class, e })));
    expect(examples.length).toBeGreaterThan(0);
    for (const { cls, e } of examples) {
      const page = pages.get(`classes/${cls}/index.html`);
      expect(page, `classes/${cls}`).toBeDefined();
      expect(page, `${cls}: ${e.thumbnail}`).toContain(`src="../../artifacts/${e.thumbnail}"`);
    }
  });

  it('gives the embedding page every point of the embedding file', async () => {
    const file = parseDataFile(EmbeddingFile, await readJson(dataArtifact('embedding').path), 'points');
    expect(file.points).toHaveLength(9);
    const page = pages.get('embedding/index.html')!;
    const data = JSON.parse(decodeEntities(/data-scatter="([^"]*)"/.exec(page)![1])) as {
      n: number; x: number[]; y: number[]; prediction: number[]; source: string[]; thumb: { prefix: string; suffix: string; mid: (string | null)[] };
    };
    expect(data.n).toBe(file.points.length);
    file.points.forEach((p, i) => {
      expect(data.x[i]).toBeCloseTo(p.x, 5);
      expect(data.y[i]).toBeCloseTo(p.y, 5);
      expect(data.prediction[i]).toBe(p.prediction);
      expect(data.source[i]).toBe(p.source);
      expect(data.thumb.prefix + data.thumb.mid[i] + data.thumb.suffix).toBe(`../artifacts/${p.thumb}`);
    });
  });

  it('shows the metrics table, one row per evaluated method and baseline', async () => {
    const file = parseDataFile(MetricsFile, await readJson(dataArtifact('metrics').path), 'metrics');
    expect(file.table.length).toBeGreaterThan(1);
    const page = pages.get('metrics/index.html')!;
    for (const row of file.table) expect(decodeEntities(page), row.method).toContain(row.title);
    for (const row of file.table.filter((r) => r.deletion !== null)) expect(page, row.method).toContain(row.deletion!.toFixed(3));
    const sample = [...pages].find(([k]) => k.startsWith('samples/'))![1];
    for (const row of file.table) expect(decodeEntities(sample), `sample page: ${row.method}`).toContain(row.title);
  });

  it('shows each layer\'s top-patches table on its layer page', () => {
    const tables = manifest.artifacts.filter((a) => a.method === 'top-patches' && a.kind === 'data');
    for (const a of tables) {
      const page = [...pages].find(([k, html]) => k.startsWith('layers/') && html.includes(`href="../../artifacts/${a.path}"`));
      expect(page, a.path).toBeDefined();
    }
  });

  // each case renames one field the pages read; the previous site must survive the failed build
  const drifts: { file: string; field: string; drift: (json: any) => void }[] = [
    { file: 'embedding/points.json', field: 'thumbnail', drift: (j) => { for (const p of j.points) { p.thumbnail = p.thumb; delete p.thumb; } } },
    { file: 'dataset-predictions/predictions.json', field: 'perClass', drift: (j) => { j.classes = j.perClass; delete j.perClass; } },
    { file: 'metrics/metrics.json', field: 'table', drift: (j) => { j.rows = j.table; delete j.table; } },
  ];
  for (const { file, field, drift } of drifts) {
    it(`refuses to build when ${file} renames ${field}, naming the file and the field`, async () => {
      const path = join(releaseDir, file);
      const original = await readFile(path, 'utf8');
      const before = await readFile(join(outputDir, 'site', 'index.html'), 'utf8');
      const json = JSON.parse(original);
      drift(json);
      await writeFile(path, JSON.stringify(json));
      try {
        const err = await buildSite({ outputDir, release: RELEASE, base: '/', logger }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConvlensError);
        const message = (err as ConvlensError).message;
        expect(message).toContain(file);
        expect(message).toContain(field);
        expect(message).toMatch(/re-run the pipeline/);
        expect(await readFile(join(outputDir, 'site', 'index.html'), 'utf8')).toBe(before);
      } finally {
        await writeFile(path, original);
      }
    }, 120_000);
  }
});
