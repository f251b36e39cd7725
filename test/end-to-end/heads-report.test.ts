/**
 * Whole reports (no site) on models whose head or shape differs from the usual softmax CNN:
 * a binary classifier with one sigmoid unit (labels.txt names the positive class), and a model
 * that flattens its input at once (no spatial layer). The head is recorded and followed; what a
 * model cannot give is skipped before any work, with the reason, and named in the manifest.
 */
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { saveLayersModel } from '../../pipeline/model/io.ts';
import { runReport } from '../../pipeline/run.ts';
import { buildSite } from '../../pipeline/site.ts';
import { CHEAP_RUN_YAML } from '../helpers/cheap-config.ts';

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

/** A project folder: the model, labels, two class folders of 16x16 images, viz.yaml. */
async function project(model: tf.LayersModel, labels: string[], folders: string[], extraYaml: string[] = []) {
  const dir = await mkdtemp(join(tmpdir(), 'convlens-heads-'));
  await saveLayersModel(model, join(dir, 'model'));
  model.dispose();
  await writeFile(join(dir, 'model', 'labels.txt'), `${labels.join('\n')}\n`);
  for (const [i, cls] of folders.entries()) {
    await mkdir(join(dir, 'images', cls), { recursive: true });
    for (let k = 0; k < 2; k++) {
      const pixels = Buffer.alloc(16 * 16 * 3);
      for (let p = 0; p < 256; p++) pixels.fill(((p * (i + 2) + k * 37) % 200) + 20, p * 3, p * 3 + 3);
      await sharp(pixels, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(join(dir, 'images', cls, `${k}.png`));
    }
  }
  const config = join(dir, 'viz.yaml');
  await writeFile(config, [
    'release: r1',
    'model:',
    '  path: model',
    '  labels: model/labels.txt',
    'data:',
    '  samples:',
    '    folder: images',
    '  dataset:',
    '    folder: images',
    ...CHEAP_RUN_YAML,
    '  class-visualization: { steps: 2 }',
    '  embedding: { algorithm: pca }',
    'metrics:',
    '  randomization: { enabled: false }',
    ...extraYaml,
  ].join('\n'));
  return { dir, config };
}

describe('reports on other heads and shapes', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('a binary classifier (one sigmoid unit): two classes, p sums to 1, maps explain the positive class, CAM through the head', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: init(1) }),
        tf.layers.globalAveragePooling2d({ name: 'gap' }),
        tf.layers.dense({ units: 1, activation: 'sigmoid', name: 'out', kernelInitializer: init(2), biasInitializer: tf.initializers.constant({ value: 0.1 }) }),
      ],
    });
    const { config } = await project(model, ['dog'], ['dog', 'not dog']);
    const logger = new MemoryLogger();
    const { manifest, releaseDir } = await runReport({ configFile: config, logger, site: false });
    expect(manifest.model.head).toMatchObject({ kind: 'binary', activation: 'sigmoid', units: 1 });
    expect(manifest.model.head!.description).toMatch(/p\(dog\) = sigmoid\(z\)/);
    expect(manifest.model.classes).toEqual(['not dog', 'dog']);
    expect(logger.text()).toMatch(/head: binary: one sigmoid unit z/);
    for (const s of manifest.samples) {
      expect(s.predictions).toHaveLength(2);
      expect(s.predictions[0].probability + s.predictions[1].probability).toBeCloseTo(1, 5);
      expect(s.labelName).toBe(s.source.startsWith('not dog') ? 'not dog' : 'dog');
    }
    const heat = (method: string) => manifest.artifacts.filter((a) => a.method === method && a.id.endsWith('/heatmap'));
    for (const method of ['saliency', 'grad-cam', 'cam', 'occlusion', 'integrated-gradients']) {
      expect(heat(method).length, method).toBe(4);
      expect(heat(method).every((a) => a.class === 1), `${method} explains "dog"`).toBe(true);
    }
    const contrast = heat('contrastive-grad-cam');
    expect(contrast.every((a) => a.class === 1 && a.stats?.versus === 0)).toBe(true);
    const predictions = manifest.artifacts.find((a) => a.method === 'dataset-predictions')!;
    expect(predictions.stats).toMatchObject({ count: 4, labelled: 4 });
    const data = JSON.parse(await readFile(join(releaseDir, predictions.path), 'utf8')) as { perClass: { name: string; count: number }[] };
    expect(data.perClass.map((c) => [c.name, c.count])).toEqual([['not dog', 2], ['dog', 2]]);
    expect(await readFile(join(releaseDir, 'summary.md'), 'utf8')).toMatch(/\| Head \| binary: one sigmoid unit z/);
  }, 120_000);

  it('a model with no spatial layer: the methods that need one are skipped before any work and named in the manifest', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [16, 16, 3], name: 'flat' }),
        tf.layers.dense({ units: 8, activation: 'relu', name: 'hidden', kernelInitializer: init(3) }),
        tf.layers.dense({ units: 2, activation: 'softmax', name: 'out', kernelInitializer: init(4) }),
      ],
    });
    const { config } = await project(model, ['a', 'b'], ['a', 'b']);
    const logger = new MemoryLogger();
    const { manifest, releaseDir } = await runReport({ configFile: config, logger, site: false });
    const spatial = ['activations', 'top-patches', 'cam', 'grad-cam', 'grad-cam-plus-plus', 'guided-grad-cam', 'contrastive-grad-cam'];
    expect(manifest.skipped?.map((s) => s.id).sort()).toEqual([...spatial].sort());
    for (const s of manifest.skipped!) expect(s.reason).toMatch(/no layer with a spatial output/);
    expect(logger.text()).toMatch(new RegExp(`warn: ${spatial.join(', ')} skipped: the model has no layer with a spatial output .*set methods.<id>.enabled: false in viz.yaml`));
    const ran = new Set(manifest.artifacts.map((a) => a.method));
    for (const id of ['saliency', 'occlusion', 'integrated-gradients', 'smoothgrad', 'guided-backprop', 'class-visualization', 'dataset-predictions', 'embedding']) {
      expect(ran.has(id), id).toBe(true);
    }
    for (const id of spatial) expect(ran.has(id), id).toBe(false);
    // the summaries and the site's overview list them with the reason, and show no empty section for them
    const summary = await readFile(join(releaseDir, 'summary.md'), 'utf8');
    expect(summary).toMatch(/Not run:\n\n- \*\*Activation maps\*\* \(`activations`\): the model has no layer with a spatial output/);
    expect(summary).toMatch(/^- \*\*Grad-CAM\*\* \(`grad-cam`\): the model has no layer with a spatial output/m);
    expect(await readFile(join(releaseDir, 'summary.html'), 'utf8')).toMatch(/<li><strong>CAM<\/strong> \(<code>cam<\/code>\): the model has no layer with a spatial output/);
    const { siteDir } = await buildSite({ outputDir: join(dirname(config), 'output'), release: 'r1', base: '/', logger: silentLogger });
    const overview = (await readFile(join(siteDir, 'index.html'), 'utf8')).replace(/ data-astro-cid-[a-z0-9]+/g, '');
    expect(overview).toMatch(/Not run for this release:/);
    expect(overview).toMatch(/<li><strong>Grad-CAM<\/strong>: the model has no layer with a spatial output/);
    expect(overview).not.toMatch(/href="grad-cam\//);
  }, 120_000);
});
