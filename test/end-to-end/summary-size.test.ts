/**
 * The size budget of summary.html: a whole report on a realistic model and image size (Darknet
 * Tiny, 224x224, 1000 classes; ../shared/fixtures) for 4 photos with every method of the
 * registry and the deletion / insertion metrics must give a summary.html of at most 2 MB, with
 * every picture inlined as a display-size copy. Iteration counts are cut (integrated gradients,
 * SmoothGrad, occlusion, class visualization, the curves' steps) to keep the run short; they
 * change the cost, not the number or the size of the pictures (fewer SmoothGrad copies make
 * noisier, larger pictures, if anything). Measured when the budget was set: 32,796,218 bytes
 * with the release's full-size PNGs inlined, 1,739,682 bytes with the display-size copies.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../pipeline/logger.ts';
import type { Manifest } from '../../pipeline/manifest.ts';
import { METHOD_IDS } from '../../pipeline/methods/registry.ts';
import { runReport } from '../../pipeline/run.ts';
import { summaryBox } from '../../pipeline/summary.ts';
import { FIXTURES, haveDarknet } from '../helpers/darknet.ts';

/** The budget: bytes of summary.html for this report. */
const BUDGET = 2_000_000;
const PHOTOS = ['chelsea.png', 'coffee.png', 'eagle.jpg', 'dog.jpg'];
const haveFixtures = haveDarknet && PHOTOS.every((p) => existsSync(join(FIXTURES, 'photos', p)));
if (!haveFixtures) console.warn(`skipping the summary.html size budget test: ${FIXTURES} (darknet-tiny and photos) is absent`);

describe.skipIf(!haveFixtures)('summary.html size budget (Darknet Tiny, 4 photos, every method)', () => {
  let dir: string;
  let releaseDir: string;
  let manifest: Manifest;
  let html: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'convlens-summary-size-'));
    await mkdir(join(dir, 'samples'));
    for (const p of PHOTOS) await copyFile(join(FIXTURES, 'photos', p), join(dir, 'samples', p));
    const config = join(dir, 'viz.yaml');
    await writeFile(config, [
      'release: size',
      'model:',
      `  path: ${JSON.stringify(join(FIXTURES, 'darknet-tiny'))}`,
      `  labels: ${JSON.stringify(join(FIXTURES, 'darknet-tiny', 'labels.txt'))}`,
      'data:',
      '  samples:',
      '    folder: samples',
      '  dataset:',
      `    folder: ${JSON.stringify(join(FIXTURES, 'photos'))}`,
      'compute:',
      '  backend: wasm',
      'methods:',
      '  integrated-gradients: { steps: 8 }',
      '  smoothgrad: { n: 4 }',
      '  occlusion: { size: 56, stride: 56 }',
      '  class-visualization: { steps: 4 }',
      '  embedding: { algorithm: pca }',
      'metrics:',
      '  deletion: { steps: 4 }',
      '  insertion: { steps: 4 }',
      '  randomization: { enabled: false }',
      '',
    ].join('\n'));
    const run = await runReport({ configFile: config, site: false, logger: new MemoryLogger() });
    releaseDir = run.releaseDir;
    manifest = run.manifest;
    html = await readFile(join(releaseDir, manifest.summary!.html), 'utf8');
  }, 300_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('ran every method on the 4 photos', () => {
    expect(manifest.samples).toHaveLength(4);
    expect(manifest.skipped ?? []).toEqual([]);
    const ran = new Set(manifest.artifacts.map((a) => a.method));
    expect(METHOD_IDS.filter((id) => !ran.has(id))).toEqual([]);
  });

  it(`summary.html stays within ${BUDGET.toLocaleString('en-US')} bytes and inlines every picture at display size`, async () => {
    const bytes = (await stat(join(releaseDir, manifest.summary!.html))).size;
    const pictures = [...manifest.samples.map((s) => s.path), ...manifest.artifacts.filter((a) => a.kind === 'image').map((a) => a.path)];
    let full = 0;
    for (const p of pictures) full += (await stat(join(releaseDir, p))).size;
    console.info(`summary.html: ${bytes.toLocaleString('en-US')} bytes for ${pictures.length} pictures (${full.toLocaleString('en-US')} bytes full size in the release)`);
    expect(bytes).toBeLessThanOrEqual(BUDGET);

    const imgs = [...html.matchAll(/<img src="(data:image\/(?:webp|png);base64,[A-Za-z0-9+/]+=*)" width="(\d+)" height="(\d+)"/g)];
    expect(imgs).toHaveLength(pictures.length);
    expect(html).not.toMatch(/(src|href)="(?!data:)/);
    // each inlined copy fits its display box, and is no larger in pixels than it is shown
    for (const [, url, w, h] of imgs) {
      const meta = await sharp(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64')).metadata();
      const box = summaryBox(Number(w), Number(h));
      expect(Number(w)).toBeLessThanOrEqual(box.width);
      expect(Number(h)).toBeLessThanOrEqual(box.height);
      expect(meta.width!).toBeLessThanOrEqual(Number(w));
      expect(meta.height!).toBeLessThanOrEqual(Number(h));
    }
  });

  it('summary.md still links the full-size pictures of the release', async () => {
    const md = await readFile(join(releaseDir, manifest.summary!.markdown), 'utf8');
    const links = [...md.matchAll(/!\[[^\]]*\]\(([^)]+)\)/g)].map((m) => decodeURIComponent(m[1]));
    expect(links.length).toBeGreaterThan(100);
    for (const l of links) expect(existsSync(join(releaseDir, l)), l).toBe(true);
  });
});
