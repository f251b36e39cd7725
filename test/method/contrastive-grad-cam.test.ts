import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { contrastiveGradCam } from '../../pipeline/methods/contrastive-grad-cam.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { darknetInput, FIXTURES, haveDarknet, loadDarknet } from '../helpers/darknet.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';

if (!haveDarknet) console.warn(`skipping the Darknet Tiny contrastive Grad-CAM test: ${FIXTURES} is absent`);

const heatmaps = <T extends { id: string }>(artifacts: T[]) => artifacts.filter((a) => a.id.endsWith('/heatmap'));

// W[k][c] for A0 = x, A1 = -x; logits_c = mean(x) (W[0][c] - W[1][c]) + b_c
const W = [[2, 1, -1], [0.5, 3, 2]];
const B = [0, 0.1, -0.2];

/** 4x4x1 -> 1x1 conv "feat" [1, -1] -> GAP -> dense (W, B): a linear head with hand weights. */
function handModel() {
  const input = tf.input({ shape: [4, 4, 1] });
  const feat = tf.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, name: 'feat', weights: [tf.tensor4d([1, -1], [1, 1, 1, 2])] }).apply(input) as tf.SymbolicTensor;
  const gap = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(feat) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, name: 'logits', weights: [tf.tensor2d(W), tf.tensor1d(B)] }).apply(gap) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

// mean 1: logits [1.5, -1.9, -3.2] (top-1 0, runner-up 1); for -xs, [-1.5, 2.1, 2.8] (top-1 2, runner-up 1)
const xs = [3, -1, 2, 0.5, 1, -2, 4, 1, 0, 2, -1, 1.5, 2, 1, 1, 1];
/** Grad-CAM of S_A - S_B on the hand model: alpha_k = (W[k][A] - W[k][B]) / 16, map relu(sum_k alpha_k A_k). */
const handMap = (x: number[], a: number, b: number) => x.map((v) => Math.max(0, ((W[0][a] - W[0][b]) * v - (W[1][a] - W[1][b]) * v) / 16));

describe('contrastive-grad-cam', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('is Grad-CAM with objective weights +1 at A and -1 at B, against the runner-up by default', async () => {
    const model = handModel();
    const neg = xs.map((v) => -v);
    const input = tf.tensor4d([...xs, ...neg], [2, 4, 4, 1]);
    const ctx = await methodContext(model, input, { classes: ['cat', 'dog', 'fox'] });
    expect(ctx.samples.map((s) => s.target)).toEqual([0, 2]);
    const arts = heatmaps(await runMethod(contrastiveGradCam, ctx));
    expect(arts.map((a) => [a.id, a.class, a.className, a.stats?.versus, a.stats?.versusName])).toEqual([
      ['contrastive-grad-cam/s0/0-vs-1/heatmap', 0, 'cat', 1, 'dog'],
      ['contrastive-grad-cam/s1/2-vs-1/heatmap', 2, 'fox', 1, 'dog'],
    ]);
    expect(arts[0].title).toBe('Contrastive Grad-CAM for "cat" vs "dog" at feat');
    // s0: alpha = ([2, 0.5] - [1, 3]) / 16 = [1, -2.5] / 16 -> relu(3.5 x / 16)
    const expected0 = handMap(xs, 0, 1);
    expect(expected0.every((v, i) => Math.abs(v - Math.max(0, (3.5 * xs[i]) / 16)) < 1e-12)).toBe(true);
    // s1: alpha = ([-1, 2] - [1, 3]) / 16 = [-2, -1] / 16 -> relu(-x / 16) with x = -xs
    const expected1 = handMap(neg, 2, 1);
    for (const [i, expected] of [expected0, expected1].entries()) {
      expect(Math.max(...expected)).toBeGreaterThan(0);
      Array.from((await readRaw(ctx, arts[i])).data).forEach((v, j) => expect(v).toBeCloseTo(expected[j], 6));
    }
    input.dispose();
    model.dispose();
  });

  it('takes A and B by index or name, and B vs A is the complementary part of A vs B', async () => {
    const model = handModel();
    const input = tf.tensor4d(xs, [1, 4, 4, 1]);
    const ctx = await methodContext(model, input, { classes: ['cat', 'dog', 'fox'] });
    const ab = heatmaps(await runMethod(contrastiveGradCam, ctx, { target: 'fox', versus: 0 }));
    const ctx2 = await methodContext(model, input, { classes: ['cat', 'dog', 'fox'] });
    const ba = heatmaps(await runMethod(contrastiveGradCam, ctx2, { target: 0, versus: 'fox' }));
    expect(ab[0].id).toBe('contrastive-grad-cam/s0/2-vs-0/heatmap');
    expect(ba[0].id).toBe('contrastive-grad-cam/s0/0-vs-2/heatmap');
    const mab = Array.from((await readRaw(ctx, ab[0])).data);
    const mba = Array.from((await readRaw(ctx2, ba[0])).data);
    mab.forEach((v, j) => expect(v).toBeCloseTo(handMap(xs, 2, 0)[j], 6));
    mba.forEach((v, j) => expect(v).toBeCloseTo(handMap(xs, 0, 2)[j], 6));
    // relu(M) and relu(-M): never both positive, and together |M|
    mab.forEach((v, j) => expect(Math.min(v, mba[j])).toBe(0));
    mab.forEach((v, j) => expect(v + mba[j]).toBeCloseTo(Math.abs(((W[0][2] - W[0][0]) - (W[1][2] - W[1][0])) * xs[j]) / 16, 6));
    input.dispose();
    model.dispose();
  });

  it('checks the options and skips samples where B = A', async () => {
    const model = handModel();
    const check = contrastiveGradCam.check as (o: unknown, m: typeof model, c?: readonly string[]) => { key: string; message: string }[];
    const parse = (o: object) => contrastiveGradCam.options.parse(o);
    expect(check(parse({ versus: 7 }), model)).toEqual([{ key: 'versus', message: 'class index 7 is out of range; the model has 3 classes (0-2)' }]);
    expect(check(parse({ versus: 'dgo' }), model, ['cat', 'dog', 'fox'])[0]).toMatchObject({ key: 'versus', message: expect.stringContaining('no class "dgo"; nearest: dog') });
    expect(check(parse({ target: 1, versus: 1 }), model)[0].message).toContain('versus names the same class as target');
    expect(check(parse({ target: 'dog', versus: 1 }), model, ['cat', 'dog', 'fox'])[0].message).toContain('versus names the same class as target');
    expect(check(parse({ layer: 'logits' }), model)[0].key).toBe('layer');
    expect(check(parse({ target: 'cat', versus: 'runner-up' }), model, ['cat', 'dog', 'fox'])).toEqual([]);

    const logger = new MemoryLogger();
    const input = tf.tensor4d([...xs, ...xs.map((v) => -v)], [2, 4, 4, 1]);
    const ctx = await methodContext(model, input, { classes: ['cat', 'dog', 'fox'], logger });
    // s0 predicts cat: "cat vs cat" is skipped; s1 predicts fox
    const arts = heatmaps(await runMethod(contrastiveGradCam, ctx, { versus: 'cat' }));
    expect(arts.map((a) => a.id)).toEqual(['contrastive-grad-cam/s1/2-vs-0/heatmap']);
    Array.from((await readRaw(ctx, arts[0])).data).forEach((v, j) => expect(v).toBeCloseTo(handMap(xs.map((x) => -x), 2, 0)[j], 6));
    expect(logger.text()).toContain('warn: contrastive-grad-cam: s0.png skipped: the class to explain and the class to contrast it with are the same ("cat")');
    // a class name that is not a label fails loudly at run time
    await expect(contrastiveGradCam.run(ctx, parse({ versus: 'wolf' }))).rejects.toThrow('methods.contrastive-grad-cam.versus: no class "wolf"');
    input.dispose();
    model.dispose();
  });

  it.skipIf(!haveDarknet)('on the real Darknet Tiny and dog.jpg, "standard schnauzer" vs "bicycle-built-for-two" is not the reverse map', async () => {
    const { model, labels } = await loadDarknet();
    const input = await darknetInput('dog.jpg');
    const dog = labels.indexOf('standard schnauzer');
    const bike = labels.indexOf('bicycle-built-for-two');
    expect(dog).toBeGreaterThanOrEqual(0);
    expect(bike).toBeGreaterThanOrEqual(0);
    const probs = model.probabilities(input);
    const p = Array.from(probs.dataSync());
    probs.dispose();
    const order = p.map((_, i) => i).sort((a, b) => p[b] - p[a]);
    // the model sees a schnauzer among its top predictions for this photo
    expect(order.slice(0, 5)).toContain(dog);

    const run = async (options: Record<string, unknown>) => {
      const ctx = await methodContext(model, input, { classes: labels });
      const [art] = heatmaps(await runMethod(contrastiveGradCam, ctx, options));
      return { art, raw: Array.from((await readRaw(ctx, art)).data) };
    };
    const ab = await run({ target: 'standard schnauzer', versus: 'bicycle-built-for-two' });
    const ba = await run({ target: 'bicycle-built-for-two', versus: 'standard schnauzer' });
    expect(ab.art.title).toBe('Contrastive Grad-CAM for "standard schnauzer" vs "bicycle-built-for-two" at leaky_re_lu_15');
    expect(ab.art.stats).toMatchObject({ versus: bike, versusName: 'bicycle-built-for-two' });
    expect(ba.art).toMatchObject({ class: bike, stats: { versus: dog, versusName: 'standard schnauzer' } });
    const norm = (a: number[]) => Math.sqrt(a.reduce((s, v) => s + v * v, 0));
    const nab = norm(ab.raw);
    const nba = norm(ba.raw);
    expect(ab.raw.every(Number.isFinite) && ba.raw.every(Number.isFinite)).toBe(true);
    expect(nab).toBeGreaterThan(0);
    expect(nba).toBeGreaterThan(0);
    // different maps: the L2 distance is as large as the larger map (they are the positive and negative parts of one signed map)
    expect(norm(ab.raw.map((v, i) => v - ba.raw[i]))).toBeGreaterThan(0.99 * Math.max(nab, nba));
    const overlap = ab.raw.reduce((s, v, i) => s + Math.min(v, ba.raw[i]), 0);
    expect(overlap).toBeLessThan(1e-6 * (nab + nba));

    // the default B is the runner-up prediction
    const def = await run({});
    expect(def.art).toMatchObject({ class: order[0], stats: { versus: order[1], versusName: labels[order[1]] } });
    input.dispose();
    model.dispose();
  });
});
