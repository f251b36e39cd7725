import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { listImages } from '../../pipeline/data.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { datasetPredictions } from '../../pipeline/methods/dataset-predictions.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { datasetAccess } from '../../pipeline/run.ts';
import { methodContext, runMethod } from '../helpers/method-context.ts';

/** logits = [m, -m] with m = mean(x) - 0.5 (x in [0,1]): bright images are "bright" (class 0). */
function brightnessModel() {
  const input = tf.input({ shape: [4, 4, 1] });
  const gap = tf.layers.globalAveragePooling2d({}).apply(input) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 2, activation: 'softmax', weights: [tf.tensor2d([[4, -4]]), tf.tensor1d([-2, 2])] }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

describe('dataset-predictions', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('scores accuracy, per-class results and the most/least sure images by hand-known predictions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-preds-'));
    // bright/: values 250, 200, 100 (the last is misclassified); dark/: 0, 50
    const images: [string, number][] = [['bright', 250], ['bright', 200], ['bright', 100], ['dark', 0], ['dark', 50]];
    for (const [i, [cls, v]] of images.entries()) {
      await mkdir(join(dir, cls), { recursive: true });
      await sharp(Buffer.alloc(16, v), { raw: { width: 4, height: 4, channels: 1 } }).png().toFile(join(dir, cls, `img${i}.png`));
    }
    const classes = ['bright', 'dark'];
    const refs = await listImages({ folder: '.' }, { config: { dir, file: join(dir, 'viz.yaml') }, key: 'data.dataset', classNames: classes });
    const model = brightnessModel();
    const pre = { size: [4, 4] as [number, number], channels: 1 as const, channelOrder: 'rgb' as const, scale: 1 / 255, mean: [0], std: [1], resize: 'fill' as const };
    const ctx = await methodContext(model, tf.zeros([0, 4, 4, 1]) as tf.Tensor4D, { classes, targets: [], preprocessing: pre, dataset: datasetAccess(refs, pre, 2) });
    const [artifact] = await runMethod(datasetPredictions, ctx, { examples: 2 });
    const data = JSON.parse(await readFile(join(ctx.out.staging, artifact.path), 'utf8'));
    const p = (v: number) => { const m = v / 255 - 0.5; return Math.exp(4 * m) / (Math.exp(4 * m) + Math.exp(-4 * m)); };
    expect(data.count).toBe(5);
    expect(data.labelled).toBe(5);
    expect(data.accuracy).toBeCloseTo(4 / 5, 10);
    expect(data.perClass[0]).toMatchObject({ class: 0, name: 'bright', count: 3, predicted: 2 });
    expect(data.perClass[0].accuracy).toBeCloseTo(2 / 3, 10);
    expect(data.perClass[1].accuracy).toBe(1);
    expect(data.perClass[0].mostSure.map((e: { source: string }) => e.source)).toEqual(['bright/img0.png', 'bright/img1.png']);
    expect(data.perClass[0].leastSure.map((e: { source: string }) => e.source)).toEqual(['bright/img2.png', 'bright/img1.png']);
    expect(data.perClass[0].mostSure[0].probability).toBeCloseTo(p(250), 5);
    expect(data.perClass[1].mostSure.map((e: { source: string }) => e.source)).toEqual(['dark/img3.png', 'dark/img4.png']);
    expect(data.confusion.sort()).toEqual([[0, 0, 2], [0, 1, 1], [1, 1, 2]].sort());
    expect(artifact.stats).toMatchObject({ count: 5, labelled: 5 });
    expect(artifact.files?.length).toBe(5);
    for (const f of artifact.files ?? []) expect(existsSync(join(ctx.out.staging, f))).toBe(true);
    model.dispose();
  });
});
