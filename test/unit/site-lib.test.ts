import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { colormapRgb } from '../../pipeline/colormap.ts';
import { colorize } from '../../pipeline/render.ts';
import { EmbeddingFile, parseDataFile } from '../../pipeline/data-files.ts';
import type { Artifact, Manifest } from '../../pipeline/manifest.ts';
import { placeOf } from '../../src/lib/manifest.ts';
import { shortLayerName } from '../../src/lib/format.ts';
import { layerSlugs, releaseSlugs } from '../../src/lib/paths.ts';
import { fitSize, imageSize } from '../../src/lib/files.ts';
import { misclassified, scatterData, type EmbeddingView } from '../../src/lib/views/embedding.ts';
import { explanationCards } from '../../src/lib/views/explanations.ts';

const manifest = {
  model: { classes: ['cat', 'dog', '<b>'] },
  methods: [{ id: 'grad-cam', title: 'Grad-CAM' }, { id: 'guided-backprop', title: 'Guided backprop' }, { id: 'contrastive-grad-cam', title: 'Contrastive Grad-CAM' }],
  samples: [],
  artifacts: [],
} as unknown as Manifest;

const img = (id: string, extra: Partial<Artifact> = {}): Artifact => ({ id, method: id.split('/')[0], kind: 'image', path: `${id}.png`, title: id, width: 8, height: 8, ...extra });

describe('site helpers', () => {
  it('groups a sample\'s pictures into one card per method and kind, one view per target, the top-1 first shown', () => {
    const cards = explanationCards(manifest, [
      img('guided-backprop/s/1/gradient', { class: 1 }),
      img('guided-backprop/s/1/heatmap', { class: 1 }),
      img('guided-backprop/s/1/overlay', { class: 1 }),
      img('grad-cam/s/0/heatmap', { class: 0, layer: 'conv' }),
      img('grad-cam/s/0/overlay', { class: 0, layer: 'conv' }),
      img('grad-cam/s/1/heatmap', { class: 1, layer: 'conv' }),
      img('grad-cam/s/1/overlay', { class: 1, layer: 'conv' }),
      img('contrastive-grad-cam/s/0-vs-2/heatmap', { class: 0, stats: { versus: 2, versusName: '<b>' } }),
      img('contrastive-grad-cam/s/0-vs-2/overlay', { class: 0 }),
    ], { id: 's', source: 's.png', path: 's.png', predictions: [{ class: 1, name: 'dog', probability: 0.9 }] });
    expect(cards.map((c) => [c.key, c.title])).toEqual([
      ['grad-cam:map', 'Grad-CAM'],
      ['guided-backprop:map', 'Guided backprop'],
      ['guided-backprop:gradient', 'Guided backprop: gradient'],
      ['contrastive-grad-cam:map', 'Contrastive Grad-CAM'],
    ]);
    const gc = cards[0];
    expect(gc.views.map((v) => [v.label, v.heatmap?.id, v.overlay?.id])).toEqual([
      ['cat', 'grad-cam/s/0/heatmap', 'grad-cam/s/0/overlay'],
      ['dog', 'grad-cam/s/1/heatmap', 'grad-cam/s/1/overlay'],
    ]);
    expect(gc.initial).toBe(1);
    expect(cards[2].views[0].image?.id).toBe('guided-backprop/s/1/gradient');
    expect(cards[3].views[0].label).toBe('cat vs <b>');
  });

  it('long graph layer names become short tab labels, with the full name as the title', () => {
    expect(shortLayerName('conv5')).toBe('conv5');
    expect(shortLayerName('block_1/conv')).toBe('block_1/conv');
    expect(shortLayerName('StatefulPartitionedCall/model/block_16_project/Conv2D')).toBe('…/block_16_project/Conv2D');
    expect(shortLayerName('/features/features.12/Concat')).toBe('…/features.12/Concat');
    const long = 'StatefulPartitionedCall/model/block_16_project/Conv2D';
    const cards = explanationCards(manifest, [
      img('activations/s/a/heatmap', { layer: long }),
      img('activations/s/b/heatmap', { layer: 'StatefulPartitionedCall/model/block_15_add/Add' }),
    ], { id: 's', source: 's.png', path: 's.png', predictions: [] });
    expect(cards[0].views.map((v) => [v.label, v.fullLabel])).toEqual([
      ['…/block_16_project/Conv2D', long],
      ['…/block_15_add/Add', 'StatefulPartitionedCall/model/block_15_add/Add'],
    ]);
  });

  it('places artifacts on the page that shows them', () => {
    const samples = new Set(['s']);
    expect(placeOf(img('grad-cam/s/0/heatmap', { image: 's' }), samples)).toEqual({ page: 'sample', sample: 's' });
    expect(placeOf(img('grad-cam/t/0/heatmap', { image: 't' }), samples)).toEqual({ page: 'method', method: 'grad-cam' });
    expect(placeOf(img('filters/conv', { layer: 'conv' }), samples)).toEqual({ page: 'layer', layer: 'conv' });
    expect(placeOf(img('class-visualization/class-1', { class: 1 }), samples)).toEqual({ page: 'classes' });
    expect(placeOf(img('class-visualization/conv/channel-1', { layer: 'conv' }), samples)).toEqual({ page: 'layer', layer: 'conv' });
    expect(placeOf(img('embedding/scatter'), samples)).toEqual({ page: 'embedding' });
    expect(placeOf({ ...img('model-summary'), kind: 'data' }, samples)).toEqual({ page: 'overview' });
    expect(placeOf(img('metrics/mean-curves'), samples)).toEqual({ page: 'metrics' });
    expect(placeOf(img('metrics/mean-curves'), samples, false)).toEqual({ page: 'method', method: 'metrics' });
    expect(placeOf(img('metrics/s/curves', { image: 's' }), samples)).toEqual({ page: 'sample', sample: 's' });
  });

  it('makes URL-safe unique slugs for layer and release names', () => {
    expect([...layerSlugs(['block1/conv:0', 'Block1 conv 0', '', 'dense']).values()]).toEqual(['block1-conv-0', 'block1-conv-0-2', 'layer', 'dense']);
    expect([...releaseSlugs(['2025.11.25', '..x']).values()]).toEqual(['2025-11-25', 'x']);
  });

  it('reads PNG and WebP sizes from the header', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-size-'));
    const raw = { raw: { width: 7, height: 5, channels: 3 as const } };
    const px = Buffer.alloc(7 * 5 * 3, 128);
    await writeFile(join(dir, 'a.png'), await sharp(px, raw).png().toBuffer());
    await writeFile(join(dir, 'b.webp'), await sharp(px, raw).webp({ lossless: true }).toBuffer());
    await writeFile(join(dir, 'c.webp'), await sharp(px, raw).webp({ quality: 80 }).toBuffer());
    await writeFile(join(dir, 'd.txt'), 'not an image at all, really');
    expect(imageSize(join(dir, 'a.png'))).toEqual({ width: 7, height: 5 });
    expect(imageSize(join(dir, 'b.webp'))).toEqual({ width: 7, height: 5 });
    expect(imageSize(join(dir, 'c.webp'))).toEqual({ width: 7, height: 5 });
    expect(imageSize(join(dir, 'd.txt'))).toBeUndefined();
    expect(imageSize(join(dir, 'missing.png'))).toBeUndefined();
    expect(fitSize(16, 8, 192)).toEqual({ width: 192, height: 96, pixelated: true });
  });

  it('packs embedding points into columns with shared thumbnail prefix and suffix', () => {
    const m = { ...manifest, artifacts: [{ id: 'e', method: 'embedding', kind: 'data', path: 'e.json', title: 'e', files: ['emb/thumbs/a.png', 'emb/thumbs/b.png'] }] } as unknown as Manifest;
    const view: EmbeddingView = {
      data: m.artifacts[0],
      points: [
        { x: 1, y: 2, label: 0, prediction: 0, thumb: 'emb/thumbs/a.png', source: 'a.png', confidence: 0.91234 },
        { x: 3, y: 4, label: 1, prediction: 2, thumb: 'emb/thumbs/b.png', source: 'b.png' },
        { x: 5, y: 6, label: null, prediction: 1, thumb: 'emb/thumbs/not-listed.png' },
      ],
      legend: [{ label: 0, name: 'cat', color: '#123456' }],
    };
    const d = scatterData(m, view, (p) => `../artifacts/${p}`);
    expect(d.thumb.prefix + d.thumb.mid[0] + d.thumb.suffix).toBe('../artifacts/emb/thumbs/a.png');
    expect(d.thumb.mid[2]).toBeNull();
    expect(d.labels).toEqual(['cat', 'dog']);
    expect(d.label).toEqual([0, 1, -1]);
    expect(d.colors.label[0]).toBe('#123456');
    expect(d.classes).toEqual(['cat', 'dog', '<b>']);
    expect(d.confidence).toEqual([0.912, null, null]);
    expect(misclassified(view)).toEqual([1]);
  });

  it('reads embedding thumbnails from `thumb` only: a point with `thumbnail` is refused, naming the file and the field', () => {
    const point = { x: 1, y: 2, prediction: 0, thumb: 'emb/thumbs/a.png' };
    expect(parseDataFile(EmbeddingFile, { points: [point] }, 'e.json').points[0].thumb).toBe('emb/thumbs/a.png');
    expect(() => parseDataFile(EmbeddingFile, { points: [{ x: 1, y: 2, prediction: 0, thumbnail: 'emb/thumbs/a.png' }] }, 'e.json'))
      .toThrow(/^e\.json does not have the shape[^\n]*\ne\.json: points\.0: Unrecognized key: "thumbnail"$/);
  });

  it('draws the legend with the colour map the pipeline colours maps with', () => {
    for (const cmap of ['turbo', 'viridis', 'gray'] as const) {
      const lut = colorize(Float32Array.from([0, 128 / 255, 1]), cmap);
      expect([...lut.subarray(3, 6)]).toEqual(colormapRgb(128 / 255, cmap));
    }
  });
});
