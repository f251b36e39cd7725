/**
 * Data that is not what it seems: a JPEG cut short or corrupt mid-file is an error, not a
 * half-grey image; a symbolic link loop in a class folder lists each image once, with a warning;
 * image formats a folder holds but convlens does not read are named, not silently dropped; the
 * EXIF orientation is ignored by default and applied on request; duplicate class names are
 * warned about; a weight shard with junk appended (or cut short) is refused; a dataset image that
 * cannot be decoded is left out with a warning and counted (data.onBadImage: skip) or stops the
 * run before any work (fail), and a sample that cannot be decoded always stops it.
 */
import sharp from 'sharp';
import { appendFile, cp, mkdir, mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { listImages, preprocessImage, type Preprocessing } from '../../pipeline/data.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { Manifest } from '../../pipeline/manifest.ts';
import { runReport } from '../../pipeline/run.ts';
import { buildSite } from '../../pipeline/site.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

const pre = (extra: Partial<Preprocessing> = {}): Preprocessing => ({ size: [8, 8], channels: 3, channelOrder: 'rgb', scale: 1, mean: [0], std: [1], resize: 'fill', ...extra });

/** A 32x16 RGB photo-like JPEG: left half red, right half blue. */
async function jpeg(orientation?: number): Promise<Buffer> {
  const px = Buffer.alloc(32 * 16 * 3);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 32; x++) px.set(x < 16 ? [220, 20, 20] : [20, 20, 220], (y * 32 + x) * 3);
  let img = sharp(px, { raw: { width: 32, height: 16, channels: 3 } }).jpeg({ quality: 95 });
  if (orientation) img = img.withMetadata({ orientation });
  return img.toBuffer();
}

describe('data that is not what it seems', () => {
  let tmp: string;
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    tmp = await mkdtemp(join(tmpdir(), 'convlens-data-'));
  });

  it('a JPEG cut short, or with corrupt bytes mid-file, is an error', async () => {
    const good = await jpeg();
    await expect(preprocessImage(good, pre())).resolves.toBeDefined();
    await expect(preprocessImage(good.subarray(0, Math.floor(good.length * 0.6)), pre())).rejects.toThrow();
    const corrupt = Buffer.from(good);
    const start = corrupt.indexOf(Buffer.from([0xff, 0xda])) + 20; // inside the scan data
    for (let i = start; i < start + 40; i += 2) corrupt[i] = 0xff;
    await expect(preprocessImage(corrupt, pre())).rejects.toThrow();
  });

  it('a symbolic link loop in a class folder lists each image once, with a warning; unread image formats are named', async () => {
    const root = join(tmp, 'loop');
    await mkdir(join(root, 'cat'), { recursive: true });
    for (const n of ['a', 'b']) await writeFile(join(root, 'cat', `${n}.jpg`), await jpeg());
    await symlink(join(root, 'cat'), join(root, 'cat', 'again'));
    await writeFile(join(root, 'cat', 'anim.gif'), 'GIF89a');
    await writeFile(join(root, 'cat', 'notes.txt'), 'not an image');
    const logger = new MemoryLogger();
    const refs = await listImages({ folder: root, limit: 100 }, { config: { file: join(tmp, 'viz.yaml'), dir: tmp } as never, key: 'data.dataset', classNames: ['cat'], logger });
    expect(refs.map((r) => r.source).sort()).toEqual(['cat/a.jpg', 'cat/b.jpg']);
    expect(logger.text()).toMatch(/warn: viz\.yaml: data\.dataset\.folder: 1 symbolic link leads back into folders already listed \(.*cat\/again\)/);
    expect(logger.text()).toMatch(/warn: .*skipped 1 \.gif image file\(s\)/);
    expect(logger.text()).not.toMatch(/\.txt/);
  });

  it('EXIF orientation: ignored by default (as stored), applied with input.exifOrientation: apply', async () => {
    const rotated = await jpeg(6); // "rotate 90 clockwise to display"
    const p = pre({ size: [16, 32] });
    const asStored = await preprocessImage(rotated, p);
    // stored: red on the left, blue on the right
    expect(asStored.display[0]).toBeGreaterThan(150);
    expect(asStored.display[(31) * 3 + 2]).toBeGreaterThan(150);
    const applied = await preprocessImage(rotated, pre({ size: [32, 16], exifOrientation: 'apply' }));
    // turned 90 degrees clockwise: red on top, blue at the bottom
    expect(applied.display[0]).toBeGreaterThan(150);
    expect(applied.display[(31 * 16) * 3 + 2]).toBeGreaterThan(150);
  });

  it('warns when class names repeat', async () => {
    const p = await makeTinyProject();
    await writeFile(join(p.dir, 'model', 'labels.txt'), 'circle\nsquare\ncircle\n');
    await writeFile(p.config, 'release: r\nmodel: { path: model, labels: model/labels.txt }\ndata:\n  samples: { files: [images/circle/circle-1.png] }\ncompute: { backend: wasm, workers: 0 }\nmetrics: { enabled: false }\nmethods:\n  class-visualization: { enabled: false }\n');
    const logger = new MemoryLogger();
    await runReport({ configFile: p.config, logger, site: false });
    expect(logger.text()).toMatch(/warn: viz\.yaml: model\.labels: 1 class name appear more than once \("circle"\)/);
  }, 60_000);

  it('a weight shard with junk appended, or cut short, is refused', async () => {
    const p = await makeTinyProject();
    const copy = join(tmp, 'junk-model');
    await cp(join(p.dir, 'model'), copy, { recursive: true });
    await appendFile(join(copy, 'weights.bin'), Buffer.alloc(16, 7));
    await expect(loadModel(copy)).rejects.toThrow(/hold \d[\d,]* bytes, but its weightsManifest lists [\d,]+ \(extra bytes: a shard was appended to or replaced\)/);
    const bytes = await readFile(join(p.dir, 'model', 'weights.bin'));
    await writeFile(join(copy, 'weights.bin'), bytes.subarray(0, bytes.length - 8));
    await expect(loadModel(copy)).rejects.toThrow(/a shard is cut short/);
  });
  it('a dataset image that cannot be decoded is skipped, named and counted (onBadImage: skip), or stops the run (fail); a bad sample always stops it', async () => {
    const p = await makeTinyProject();
    const good = await readFile(join(p.dir, 'images', 'circle', 'circle-1.png'));
    await writeFile(join(p.dir, 'images', 'circle', 'broken.png'), good.subarray(0, 60));
    await writeFile(join(p.dir, 'images', 'square', 'noise.jpg'), Buffer.from('not a jpeg at all'));
    const yaml = (extra: string) => `release: r\nmodel: { path: model, labels: model/labels.txt }\ndata:\n  samples: { files: [images/circle/circle-1.png] }\n  dataset: { folder: images }\n${extra}compute: { backend: wasm, workers: 0 }\nmetrics: { enabled: false }\nmethods:\n  class-visualization: { enabled: false }\n`;

    await writeFile(p.config, yaml(''));
    const logger = new MemoryLogger();
    const { manifest } = await runReport({ configFile: p.config, logger, site: false });
    const text = logger.text();
    expect(text).toMatch(/warn: viz\.yaml: data\.dataset\.folder: skipped image "circle\/broken\.png" \(.*broken\.png\): /);
    expect(text).toMatch(/warn: viz\.yaml: data\.dataset\.folder: skipped image "square\/noise\.jpg"/);
    expect(text).toMatch(/2 of 4 dataset images cannot be decoded and are left out/);
    expect(text).toMatch(/data: 1 samples, 2 dataset images \(2 left out: cannot be decoded\)/);
    expect(manifest.dataset.count).toBe(2);
    expect(manifest.dataset.skipped?.map((b) => b.source)).toEqual(['circle/broken.png', 'square/noise.jpg']);
    expect(Manifest.parse(manifest)).toBeDefined();
    const predictions = manifest.artifacts.find((a) => a.method === 'dataset-predictions' && a.kind === 'data');
    expect(predictions).toBeDefined();
    const rows = JSON.parse(await readFile(join(p.outputDir, 'releases', 'r', predictions!.path), 'utf8'));
    expect(JSON.stringify(rows)).not.toMatch(/broken|noise/);
    expect(JSON.stringify(rows)).toMatch(/circle-1\.png/);
    const summary = await readFile(join(p.outputDir, 'releases', 'r', 'summary.md'), 'utf8');
    expect(summary).toMatch(/Dataset images left out because they cannot be decoded \(2\)/);
    expect(summary).toMatch(/circle\/broken\.png/);
    const { siteDir } = await buildSite({ outputDir: p.outputDir, release: 'r', base: '/', logger: new MemoryLogger() });
    const index = await readFile(join(siteDir, 'index.html'), 'utf8');
    expect(index).toMatch(/left out: cannot be decoded/);
    expect(index).toMatch(/<code[^>]*>square\/noise\.jpg<\/code>/);

    await writeFile(p.config, yaml('').replace('dataset: { folder: images }', 'dataset: { folder: images }\n  onBadImage: fail'));
    const failing = new MemoryLogger();
    const err = await runReport({ configFile: p.config, logger: failing, site: false }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message.split('\n')).toEqual([
      expect.stringMatching(/^viz\.yaml: data\.dataset\.folder: cannot read image "circle\/broken\.png" \(.*\): /),
      expect.stringMatching(/^viz\.yaml: data\.dataset\.folder: cannot read image "square\/noise\.jpg" \(.*\): /),
    ]);
    expect(failing.text()).not.toMatch(/dataset-predictions:/);

    await writeFile(p.config, yaml('').replace('files: [images/circle/circle-1.png]', 'files: [images/circle/broken.png]'));
    const bad = await runReport({ configFile: p.config, logger: new MemoryLogger(), site: false }).catch((e: Error) => e);
    expect((bad as Error).message).toMatch(/^viz\.yaml: data\.samples\.files: cannot read image "images\/circle\/broken\.png"/);
    expect((bad as Error).message.split('\n')).toHaveLength(1);
    const releases = await readdir(join(p.outputDir, 'releases'));
    expect(releases).toEqual(['r']);
  }, 120_000);
});
