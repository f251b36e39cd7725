import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { classVisualization, resolveRange, toDisplay } from '../../pipeline/methods/class-visualization.ts';
import { colorMatrix, ImageParameterization, imageToSpectrum, RealDft2d, spectrumScale, spectrumToImage } from '../../pipeline/methods/image-parameterization.ts';
import { gaussianBlur } from '../../pipeline/blur.ts';
import { totalVariation, Warp } from '../../pipeline/methods/image-transforms.ts';
import { mulberry32 as seededRandom } from '../../pipeline/random.ts';
import type { ModelAdapter } from '../../pipeline/model/adapter.ts';
import { LayersAdapter } from '../../pipeline/model/layers-adapter.ts';
import { loadModel } from '../../pipeline/model/load.ts';
import { centralDiff, maxAbsDiff, maxRelErr } from '../helpers/finite-diff.ts';
import { methodContext, readRaw, runMethod } from '../helpers/method-context.ts';
import { vals } from '../helpers/tiny-models.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
const haveFixtures = existsSync(resolve(FIXTURES, 'darknet-tiny/model.json'));
if (!haveFixtures) console.warn(`skipping the Darknet Tiny class-visualization test: ${FIXTURES} is absent`);
const DEMO = resolve(import.meta.dirname, '../../models/demo-mnist');
const haveDemo = existsSync(resolve(DEMO, 'model.json'));
if (!haveDemo) console.warn(`skipping the demo-mnist class-visualization test: ${DEMO}/model.json is absent (npm run train:demo)`);

/** No random transforms: the objective is exactly S_c - penalties. */
const NO_TRANSFORMS = { jitter: 0, scales: [1], rotate: 0 };

// ---- float64 references ----

/** x[m,n] = 1/(hw) sum_k sum_l c_l Re(X[k,l] e^{2 pi i (km/h + ln/w)}), c_l = 1 for l = 0 and l = w/2, else 2. */
function irfft2d64(re: ArrayLike<number>, im: ArrayLike<number>, h: number, w: number): Float64Array {
  const wf = Math.floor(w / 2) + 1;
  const out = new Float64Array(h * w);
  for (let m = 0; m < h; m++) for (let n = 0; n < w; n++) {
    let s = 0;
    for (let k = 0; k < h; k++) for (let l = 0; l < wf; l++) {
      const c = l === 0 || 2 * l === w ? 1 : 2;
      const th = 2 * Math.PI * ((k * m) / h + (l * n) / w);
      s += c * (re[k * wf + l] * Math.cos(th) - im[k * wf + l] * Math.sin(th));
    }
    out[m * w + n] = s / (h * w);
  }
  return out;
}

/** X[k,l] = sum_m sum_n x[m,n] e^{-2 pi i (km/h + ln/w)}, l < w/2 + 1. */
function rfft2d64(x: ArrayLike<number>, h: number, w: number) {
  const wf = Math.floor(w / 2) + 1;
  const re = new Float64Array(h * wf);
  const im = new Float64Array(h * wf);
  for (let k = 0; k < h; k++) for (let l = 0; l < wf; l++) {
    for (let m = 0; m < h; m++) for (let n = 0; n < w; n++) {
      const th = 2 * Math.PI * ((k * m) / h + (l * n) / w);
      re[k * wf + l] += x[m * w + n] * Math.cos(th);
      im[k * wf + l] -= x[m * w + n] * Math.sin(th);
    }
  }
  return { re, im };
}

/** The fft parameterisation by hand: P [2, 1, c, h, wf] -> image [h, w, c]. */
function fftImage64(P: Float64Array, h: number, w: number, c: number, lo: number[], hi: number[]): Float64Array {
  const wf = Math.floor(w / 2) + 1;
  const scale = spectrumScale(h, w, 1);
  const plane = h * wf;
  const t = new Float64Array(h * w * c);
  for (let ch = 0; ch < c; ch++) {
    const re = Array.from({ length: plane }, (_, i) => P[ch * plane + i] * scale[i]);
    const im = Array.from({ length: plane }, (_, i) => P[c * plane + ch * plane + i] * scale[i]);
    irfft2d64(re, im, h, w).forEach((v, i) => { t[i * c + ch] = v / 4; });
  }
  const M = colorMatrix('rgb');
  const out = new Float64Array(h * w * c);
  for (let i = 0; i < h * w; i++) {
    for (let ch = 0; ch < c; ch++) {
      const mixed = c === 3 ? M[ch][0] * t[i * 3] + M[ch][1] * t[i * 3 + 1] + M[ch][2] * t[i * 3 + 2] : t[i * c + ch];
      out[i * c + ch] = lo[ch] + (hi[ch] - lo[ch]) / (1 + Math.exp(-mixed));
    }
  }
  return out;
}

// ---- models ----

/** y = x_flat @ W: [h, w, c] -> [classes], no bias. S_c - l2 ||x||^2 is maximised at W_c / (2 l2). */
function linearModel(W: number[], shape: [number, number, number], classes: number) {
  const input = tf.input({ shape });
  const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
  const size = shape[0] * shape[1] * shape[2];
  const out = tf.layers.dense({ units: classes, useBias: false, weights: [tf.tensor2d(W, [size, classes])] }).apply(flat) as tf.SymbolicTensor;
  return new LayersAdapter(tf.model({ inputs: input, outputs: out }));
}

const S = 16;
const LINE_CLASSES = ['horizontal', 'vertical', 'diagonal'];

/** 16x16 gray images in [0, 1]: a bright horizontal, vertical or diagonal bar on dim noise. */
function lineData(n: number, seed: number) {
  const rng = seededRandom(seed);
  const xs = new Float32Array(n * S * S);
  const ys: number[] = [];
  for (let i = 0; i < n; i++) {
    const cls = i % 3;
    ys.push(cls);
    const o = i * S * S;
    for (let j = 0; j < S * S; j++) xs[o + j] = rng() * 0.2;
    const a = 2 + Math.floor(rng() * (S - 4));
    const b = Math.floor(rng() * 4);
    const len = S - 4 - Math.floor(rng() * 4);
    for (let t = 0; t < len; t++) {
      const [y, x] = cls === 0 ? [a, b + t] : cls === 1 ? [b + t, a] : [b + t, b + t];
      xs[o + y * S + x] = 1;
    }
  }
  return { x: tf.tensor4d(xs, [n, S, S, 1]), y: tf.tidy(() => tf.oneHot(ys, 3).toFloat()), ys };
}

/**
 * A small CNN on the line task: "lines" (3x3 conv, 4 hand-set zero-mean oriented line detectors,
 * frozen, relu) -> 2x2 max pool -> GAP -> dense softmax, trained on 96 images. The conv is frozen
 * because tfjs's filter gradient runs as a cpu kernel on wasm (~4 s per epoch here even at 16 px).
 */
async function trainLineModel() {
  const row = (r: number[][]) => r.flat();
  const detectors = [
    row([[-1, -1, -1], [2, 2, 2], [-1, -1, -1]]),
    row([[-1, 2, -1], [-1, 2, -1], [-1, 2, -1]]),
    row([[2, -1, -1], [-1, 2, -1], [-1, -1, 2]]),
    row([[-1, -1, 2], [-1, 2, -1], [2, -1, -1]]),
  ];
  const kernel = new Float32Array(9 * 4);
  detectors.forEach((f, o) => f.forEach((v, i) => { kernel[i * 4 + o] = v / 3; }));
  const input = tf.input({ shape: [S, S, 1] });
  let h = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'lines', trainable: false, weights: [tf.tensor4d(kernel, [3, 3, 1, 4]), tf.zeros([4])] }).apply(input) as tf.SymbolicTensor;
  h = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(h) as tf.SymbolicTensor;
  h = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(h) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, activation: 'softmax', name: 'fc', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }).apply(h) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
  const train = lineData(96, 5);
  await model.fit(train.x, train.y, { epochs: 150, batchSize: 96, shuffle: false, verbose: 0 });
  tf.dispose([train.x, train.y]);
  return new LayersAdapter(model);
}

/** Mean |x[i,j+1] - x[i,j]| and mean |x[i+1,j] - x[i,j]| of a [h, w] gray image. */
function meanDiffs(data: ArrayLike<number>, h: number, w: number) {
  let dx = 0;
  let dy = 0;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (x + 1 < w) dx += Math.abs(data[y * w + x + 1] - data[y * w + x]);
    if (y + 1 < h) dy += Math.abs(data[(y + 1) * w + x] - data[y * w + x]);
  }
  return { dx: dx / (h * (w - 1)), dy: dy / ((h - 1) * w) };
}

describe('class-visualization', () => {
  let lineModel: LayersAdapter;
  let lineSamples: tf.Tensor4D;

  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
    lineModel = await trainLineModel();
    const test = lineData(30, 9);
    lineSamples = test.x.slice([0, 0, 0, 0], [3, -1, -1, -1]);
    const pred = tf.tidy(() => Array.from(tf.argMax(lineModel.forward(test.x).logits, 1).dataSync()));
    // the setup is meaningful only if the model learned the task
    expect(pred).toEqual(test.ys);
    tf.dispose([test.x, test.y]);
  });

  afterAll(() => {
    lineSamples.dispose();
    lineModel.dispose();
  });

  const lineContext = (logger = new MemoryLogger()) => methodContext(lineModel, lineSamples, { classes: LINE_CLASSES, logger });

  describe('closed form on a linear model', () => {
    // 4x4x3 input, 2 classes, W in [-2, 2]; l2 = 0.5 so W_c / (2 l2) = W_c, and the per-channel
    // ranges clip part of it
    const shape: [number, number, number] = [4, 4, 3];
    const W = vals(48 * 2, 31, 2);
    const ranges: [number, number][] = [[-1, 1], [-0.5, 1.5], [-2, 0.25]];
    const expected = (c: number) => Array.from({ length: 48 }, (_, i) => Math.min(ranges[i % 3][1], Math.max(ranges[i % 3][0], W[i * 2 + c] / (2 * 0.5))));

    it('plain gradient ascent on pixels converges to clip(W_c / (2 lambda)) and records softmax(W x*)', async () => {
      const model = linearModel(W, shape, 2);
      const ctx = await methodContext(model, tf.zeros([1, 4, 4, 3]) as tf.Tensor4D);
      const arts = await runMethod(classVisualization, ctx, {
        classes: [0, 1], parameterization: 'pixel', optimizer: 'sgd', learningRate: 0.2, l2: 0.5, steps: 150, inputRange: ranges, ...NO_TRANSFORMS,
      });
      expect(arts.map((a) => a.class)).toEqual([0, 1]);
      // the closed form must be non-trivial: some entries are clipped, some are not
      const clipped = expected(0).filter((v, i) => v !== W[i * 2]).length;
      expect(clipped).toBeGreaterThan(5);
      expect(clipped).toBeLessThan(43);
      for (const c of [0, 1]) {
        const raw = await readRaw(ctx, arts[c]);
        expect(raw.shape).toEqual([4, 4, 3]);
        expect(maxAbsDiff(raw.data, expected(c))).toBeLessThan(1e-4);
        const logits = [0, 1].map((k) => expected(c).reduce((s, v, i) => s + v * W[i * 2 + k], 0));
        const p = 1 / (1 + Math.exp(logits[1 - c] - logits[c]));
        expect(arts[c].stats?.probability).toBeCloseTo(p, 4);
        expect(arts[c].stats?.score).toBeCloseTo(logits[c], 3);
      }
      model.dispose();
    });

    it('a single-output model is a binary head: class 1 (score z) and class 0 (score -z) reach +-W/(2 lambda), p = sigmoid', async () => {
      const W0 = Array.from({ length: 48 }, (_, i) => W[i * 2]);
      const model = linearModel(W0, shape, 1);
      expect(model.head.kind).toBe('binary');
      const ctx = await methodContext(model, tf.zeros([1, 4, 4, 3]) as tf.Tensor4D);
      const arts = await runMethod(classVisualization, ctx, {
        classes: [1, 0], parameterization: 'pixel', optimizer: 'sgd', learningRate: 0.2, l2: 0.5, steps: 150, inputRange: ranges, ...NO_TRANSFORMS,
      });
      const negW = W0.map((v) => -v);
      for (const [art, sign, w] of [[arts[0], 1, W0], [arts[1], -1, negW]] as const) {
        const want = Array.from({ length: 48 }, (_, i) => Math.min(ranges[i % 3][1], Math.max(ranges[i % 3][0], w[i] / (2 * 0.5))));
        expect(maxAbsDiff((await readRaw(ctx, art)).data, want)).toBeLessThan(1e-4);
        const z = want.reduce((acc, v, i) => acc + v * W0[i], 0);
        expect(art.stats?.probability).toBeCloseTo(1 / (1 + Math.exp(-sign * z)), 4);
        expect(art.stats?.score).toBeCloseTo(sign * z, 3);
      }
      model.dispose();
    });

    it('Adam on pixels reaches the same optimum', async () => {
      const model = linearModel(W, shape, 2);
      const ctx = await methodContext(model, tf.zeros([1, 4, 4, 3]) as tf.Tensor4D);
      const arts = await runMethod(classVisualization, ctx, {
        classes: [1], parameterization: 'pixel', optimizer: 'adam', learningRate: 0.02, l2: 0.5, steps: 400, inputRange: ranges, ...NO_TRANSFORMS,
      });
      const raw = await readRaw(ctx, arts[0]);
      expect(maxAbsDiff(raw.data, expected(1))).toBeLessThan(1e-2);
      model.dispose();
    });
  });

  describe('Fourier parameterisation', () => {
    it('rfft2d matches the float64 DFT, and image -> spectrum -> image round-trips within 1e-4', () => {
      for (const [h, w] of [[5, 6], [6, 7]]) {
        const x = vals(2 * h * w * 3, 40 + w, 1);
        const img = tf.tensor4d(x, [2, h, w, 3]);
        const spec = imageToSpectrum(img, { scaled: false });
        const wf = Math.floor(w / 2) + 1;
        expect(spec.shape).toEqual([2, 2, 3, h, wf]);
        // image 1, channel 2 against the reference
        const plane = Array.from({ length: h * w }, (_, i) => x[((1 * h * w) + i) * 3 + 2]);
        const ref = rfft2d64(plane, h, w);
        const got = tf.tidy(() => [spec.slice([0, 1, 2, 0, 0], [1, 1, 1, -1, -1]).dataSync(), spec.slice([1, 1, 2, 0, 0], [1, 1, 1, -1, -1]).dataSync()]);
        expect(maxAbsDiff(got[0], ref.re)).toBeLessThan(1e-4);
        expect(maxAbsDiff(got[1], ref.im)).toBeLessThan(1e-4);
        for (const scaled of [false, true]) {
          const s = scaled ? imageToSpectrum(img, { scaled }) : spec.clone();
          const back = spectrumToImage(s, w, { scaled });
          expect(back.shape).toEqual([2, h, w, 3]);
          expect(maxAbsDiff(back.dataSync(), x)).toBeLessThan(1e-4);
          tf.dispose([s, back]);
        }
        tf.dispose([img, spec]);
      }
    });

    it('irfft2d matches the float64 reference on a non-Hermitian spectrum', () => {
      const [h, w] = [4, 6];
      const wf = 4;
      const re = vals(h * wf, 51, 1);
      const im = vals(h * wf, 52, 1);
      const dft = new RealDft2d(h, w);
      const out = tf.tidy(() => dft.irfft2d(tf.tensor3d(re, [1, h, wf]), tf.tensor3d(im, [1, h, wf])).dataSync());
      dft.dispose();
      expect(maxAbsDiff(out, irfft2d64(re, im, h, w))).toBeLessThan(1e-6);
    });

    it('the gradient w.r.t. the spectrum (scale, colour, sigmoid, range) matches finite differences', () => {
      for (const [h, w, c] of [[4, 5, 3], [4, 4, 1]]) {
        const lo = [-1, 0, 0.5].slice(0, c);
        const hi = [1, 2, 1].slice(0, c);
        const param = new ImageParameterization({ kind: 'fft', n: 1, h, w, c, range: { lo, hi }, channelOrder: 'rgb' });
        const wf = Math.floor(w / 2) + 1;
        const P = vals(2 * c * h * wf, 60 + c, 0.02);
        const u = vals(h * w * c, 70 + c, 1);
        const grad = tf.tidy(() => {
          const uT = tf.tensor4d(u, [1, h, w, c]);
          return tf.grad((p: tf.Tensor) => tf.sum(tf.mul(param.image(p), uT)))(tf.tensor(P, param.shape)).dataSync();
        });
        const f = (p: Float64Array) => fftImage64(p, h, w, c, lo, hi).reduce((s, v, i) => s + v * u[i], 0);
        const fd = centralDiff(f, P, Array.from({ length: P.length }, (_, i) => i), 1e-4);
        expect(maxRelErr(grad, fd, 1e-2)).toBeLessThan(2e-3);
        // the forward pass agrees with the reference too
        const img = tf.tidy(() => param.image(tf.tensor(P, param.shape)).dataSync());
        expect(maxAbsDiff(img, fftImage64(Float64Array.from(P), h, w, c, lo, hi))).toBeLessThan(1e-5);
        param.dispose();
      }
    });
  });

  describe('transforms', () => {
    it('an integer shift moves the image and fills with the range centre', () => {
      const x = tf.tensor4d(vals(3 * 4 * 2, 80, 1), [1, 3, 4, 2]);
      const warp = new Warp([{ angle: 0, scale: 1, dx: 1, dy: 0 }], 3, 4);
      const out = tf.tidy(() => warp.apply(x, [0.5, -0.25]).arraySync()[0]);
      const xa = (x.arraySync() as number[][][][])[0];
      for (let y = 0; y < 3; y++) {
        expect(out[y][0][0]).toBeCloseTo(0.5, 6);
        expect(out[y][0][1]).toBeCloseTo(-0.25, 6);
        for (let j = 1; j < 4; j++) for (let k = 0; k < 2; k++) expect(out[y][j][k]).toBeCloseTo(xa[y][j - 1][k], 6);
      }
      warp.dispose();
      x.dispose();
    });

    it('the warp gradient (scatter-add) matches finite differences under rotation and scale', () => {
      const [h, w, c] = [5, 6, 2];
      const x = vals(2 * h * w * c, 81, 1);
      const u = vals(2 * h * w * c, 82, 1);
      const warp = new Warp([{ angle: 17, scale: 1.1, dx: 1, dy: -2 }, { angle: -8, scale: 0.9, dx: 0, dy: 1 }], h, w);
      const uT = tf.tensor4d(u, [2, h, w, c]);
      const fill = [0.3, -0.1];
      const F = (v: ArrayLike<number>) => tf.tidy(() => tf.sum(tf.mul(warp.apply(tf.tensor4d(Float32Array.from(v), [2, h, w, c]), fill), uT)).dataSync()[0]);
      const grad = tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(warp.apply(t as tf.Tensor4D, fill), uT)))(tf.tensor4d(x, [2, h, w, c])).dataSync());
      // the warp is affine in x, so a large step is exact up to float32 rounding
      const fd = centralDiff((v) => F(v), x, Array.from({ length: x.length }, (_, i) => i), 0.5);
      expect(maxAbsDiff(grad, fd)).toBeLessThan(1e-4);
      // rotation and scale move mass: the gradient is not the identity
      expect(maxAbsDiff(grad, u)).toBeGreaterThan(0.1);
      warp.dispose();
      uT.dispose();
    });

    it('Gaussian blur keeps a constant image and a unit mass; total variation by hand', () => {
      const flat = tf.fill([1, 7, 7, 2], 0.75) as tf.Tensor4D;
      const b = gaussianBlur(flat, 1, 'three-sigma');
      expect(maxAbsDiff(b.dataSync(), new Array(98).fill(0.75))).toBeLessThan(1e-6);
      // away from the borders (reflection would fold mass back in)
      const impulse = tf.tidy(() => tf.reshape(tf.oneHot([60], 121), [1, 11, 11, 1]).toFloat() as tf.Tensor4D);
      const bi = gaussianBlur(impulse, 0.7, 'three-sigma');
      const d = bi.dataSync();
      expect(Array.from(d).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
      expect(d[60]).toBeLessThan(0.5);
      expect(d[59]).toBeCloseTo(d[61], 6);
      expect(d[49]).toBeCloseTo(d[71], 6);
      const img = tf.tensor4d([0, 1, 3, 1, 1, 0], [1, 2, 3, 1]);
      // rows: |1-0| + |3-1| + |1-1| + |0-1| = 4; columns: |1-0| + |1-1| + |0-3| = 4
      const tv = totalVariation(img);
      expect(tv.dataSync()[0]).toBeCloseTo(8, 6);
      tf.dispose([flat, b, impulse, bi, img, tv]);
    });
  });

  describe('on a trained CNN', () => {
    it('each class image reaches its class (top-1, p >= 0.9) with the default settings and shows its orientation', async () => {
      const ctx = await lineContext();
      const arts = await runMethod(classVisualization, ctx, { classes: [0, 1, 2] });
      expect(arts.map((a) => a.className)).toEqual(LINE_CLASSES);
      const structure = [];
      for (const a of arts) {
        expect(a.method).toBe('class-visualization');
        expect(a.stats?.topClass).toBe(a.class);
        expect(a.stats?.probability as number).toBeGreaterThanOrEqual(0.9);
        expect(a.stats?.reached).toBe(true);
        expect(a.title).not.toContain('did not reach');
        const raw = await readRaw(ctx, a);
        expect(raw.shape).toEqual([S, S, 1]);
        structure.push(meanDiffs(raw.data, S, S));
      }
      // horizontal stripes change along y, vertical ones along x
      expect(structure[0].dy).toBeGreaterThan(1.5 * structure[0].dx);
      expect(structure[1].dx).toBeGreaterThan(1.5 * structure[1].dy);
      // the picture maps the valid range (pixels 0..255 through the preprocessing: [0, 1]) to 0..255
      const { data, info } = await sharp(resolve(ctx.out.staging, arts[0].path)).raw().toBuffer({ resolveWithObject: true });
      expect([info.width, info.height]).toEqual([S, S]);
      const range = resolveRange(ctx, 'auto');
      expect(range).toEqual({ lo: [0], hi: [1] });
      const raw0 = await readRaw(ctx, arts[0]);
      const mapped = Array.from(raw0.data, (v) => Math.round(Math.min(1, Math.max(0, (v - range.lo[0]) / (range.hi[0] - range.lo[0]))) * 255));
      // (sharp reads the gray picture back as sRGB: read the first channel)
      expect(maxAbsDiff(Array.from(mapped, (_, i) => data[i * info.channels]), mapped)).toBe(0);
      expect(Math.max(...mapped) - Math.min(...mapped)).toBeGreaterThan(100);
    });

    it('classes: "samples" visualises the distinct top-1 classes of the samples; names resolve', async () => {
      const ctx = await lineContext();
      ctx.samples.forEach((s, i) => { s.target = [2, 0, 2][i]; });
      const arts = await runMethod(classVisualization, ctx, { steps: 2 });
      expect(arts.map((a) => a.class)).toEqual([2, 0]);
      const ctx2 = await lineContext();
      const arts2 = await runMethod(classVisualization, ctx2, { steps: 2, classes: ['vertical', 0] });
      expect(arts2.map((a) => a.class)).toEqual([1, 0]);
      const ctx3 = await lineContext();
      await expect(classVisualization.run(ctx3, classVisualization.options.parse({ classes: ['vertikal'] }))).rejects.toThrow(/no class "vertikal"; nearest: vertical/);
    });

    it('an image that stays below minProbability is flagged in stats, title, alt and a warning', async () => {
      const logger = new MemoryLogger();
      const ctx = await lineContext(logger);
      const arts = await runMethod(classVisualization, ctx, { classes: [2], steps: 1, minProbability: 0.999 });
      const [a] = arts;
      const p = a.stats?.probability as number;
      expect(p).toBeGreaterThan(0);
      expect(p).toBeLessThan(0.999);
      expect(a.stats?.reached).toBe(false);
      expect(a.title).toContain('did not reach the target');
      expect(a.alt).toContain('did not reach the target');
      expect(logger.records.some((r) => r.level === 'warn' && r.msg.includes('"diagonal" did not reach the target'))).toBe(true);
    });

    it('seeded: the same seed gives the same image, another seed a different one, and images do not depend on each other', async () => {
      const run = async (seed: number, classes: number[]) => {
        const ctx = await lineContext();
        const arts = await runMethod(classVisualization, ctx, { classes, steps: 6, seed });
        return Promise.all(arts.map((a) => readRaw(ctx, a).then((r) => r.data)));
      };
      const [a] = await run(1, [2]);
      const [b] = await run(1, [2]);
      const [c] = await run(2, [2]);
      expect(Array.from(a)).toEqual(Array.from(b));
      expect(maxAbsDiff(a, c)).toBeGreaterThan(1e-2);
      const [, d] = await run(1, [0, 2]);
      expect(maxAbsDiff(a, d)).toBeLessThan(1e-5);
    });

    it('visualises a channel of a layer: its mean activation rises and the image has its orientation', async () => {
      const act = async (steps: number) => {
        const ctx = await lineContext();
        const arts = await runMethod(classVisualization, ctx, { classes: [], channels: [{ layer: 'lines', channel: 1 }], steps });
        expect(arts).toHaveLength(1);
        return { a: arts[0], raw: await readRaw(ctx, arts[0]) };
      };
      const first = await act(1);
      const { a, raw } = await act(48);
      expect(a.layer).toBe('lines');
      expect(a.stats?.channel).toBe(1);
      expect(a.id).toBe('class-visualization/lines/channel-1');
      expect(a.stats?.activation as number).toBeGreaterThan(3 * (first.a.stats?.activation as number));
      const { dx, dy } = meanDiffs(raw.data, S, S);
      // channel 1 detects vertical lines
      expect(dx).toBeGreaterThan(1.5 * dy);
    });

    it('runs the pixel parameterisation with blur and total variation, within the range, without leaks', async () => {
      const ctx = await lineContext();
      const arts = await runMethod(classVisualization, ctx, { classes: [0], parameterization: 'pixel', steps: 6, blurEvery: 2, blurSigma: 0.8, tv: 0.01, l2: 0.01 });
      const raw = await readRaw(ctx, arts[0]);
      const range = resolveRange(ctx, 'auto');
      expect(Math.min(...raw.data)).toBeGreaterThanOrEqual(range.lo[0]);
      expect(Math.max(...raw.data)).toBeLessThanOrEqual(range.hi[0]);
      expect(arts[0].stats?.parameterization).toBe('pixel');
    });
  });

  describe('options and helpers', () => {
    it('check reports unknown layers, channels and class indices out of range, and bad ranges', () => {
      const parse = (o: Record<string, unknown>) => classVisualization.options.parse(o);
      expect(classVisualization.check!(parse({ channels: [{ layer: 'lines', channel: 3 }] }), lineModel)).toEqual([]);
      const problems = classVisualization.check!(parse({
        classes: [1, 7], channels: [{ layer: 'linez', channel: 0 }, { layer: 'lines', channel: 4 }], inputRange: [1, 0],
      }), lineModel);
      expect(problems.map((p) => p.key)).toEqual(['classes.1', 'channels.0.layer', 'channels.1.channel', 'inputRange']);
      expect(problems[1].message).toContain('lines');
      expect(problems[2].message).toContain('4 channels');
      const named = classVisualization.check!(parse({ classes: ['vertikal', 'diagonal'] }), lineModel, LINE_CLASSES);
      expect(named).toEqual([{ key: 'classes.0', message: expect.stringContaining('nearest: vertical') }]);
    });

    it('derives the range from the preprocessing, or per channel from the samples (widening a constant channel with a warning)', () => {
      const logger = new MemoryLogger();
      const input = tf.tensor4d([0.1, 5, -1, 0.9, 5, 2], [1, 1, 2, 3]);
      const model = { inputShape: [1, 2, 3] } as unknown as ModelAdapter;
      const r = resolveRange({ input, model, logger }, 'samples');
      expect(maxAbsDiff(r.lo, [0.1, 4.5, -1])).toBeLessThan(1e-6);
      expect(maxAbsDiff(r.hi, [0.9, 5.5, 2])).toBeLessThan(1e-6);
      expect(logger.records.filter((r) => r.level === 'warn')).toHaveLength(1);
      expect(resolveRange({ input, model, logger }, [[0, 1], [2, 3], [4, 5]])).toEqual({ lo: [0, 2, 4], hi: [1, 3, 5] });
      expect(resolveRange({ input, model, logger }, [-1, 1])).toEqual({ lo: [-1, -1, -1], hi: [1, 1, 1] });
      // with the preprocessing known, auto is the image of pixels 0..255 (ImageNet mean/std here)
      const preprocessing = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
      const auto = resolveRange({ input, model, logger, preprocessing }, 'auto');
      expect(maxAbsDiff(auto.lo, [0, 1, 2].map((k) => -preprocessing.mean[k] / preprocessing.std[k]))).toBeLessThan(1e-12);
      expect(maxAbsDiff(auto.hi, [0, 1, 2].map((k) => (1 - preprocessing.mean[k]) / preprocessing.std[k]))).toBeLessThan(1e-12);
      expect(resolveRange({ input, model, logger, preprocessing }, 'samples').hi[2]).toBeCloseTo(2, 6);
      // a negative scale flips the ends
      const flipped = resolveRange({ input, model, logger, preprocessing: { scale: -1, mean: [0], std: [1] } }, 'auto');
      expect(maxAbsDiff([...flipped.lo, ...flipped.hi], [-255, -255, -255, 0, 0, 0])).toBe(0);
      input.dispose();
    });

    it('display maps [lo, hi] to 0..255 per channel, clamps, and shows BGR models in RGB', () => {
      const range = { lo: [0, -1, 10], hi: [1, 1, 20] };
      const px = new Float32Array([0.5, 1, 15, -3, -1, 30]);
      expect(Array.from(toDisplay(px, 3, range, 'rgb'))).toEqual([128, 255, 128, 0, 0, 255]);
      // BGR: channel 0 of the data is blue; output is R, G, B
      expect(Array.from(toDisplay(px, 3, range, 'bgr'))).toEqual([128, 255, 128, 255, 0, 0]);
    });
  });

  it.skipIf(!haveDemo)('demo-mnist: the images of a few digits reach their class (top-1, p >= 0.9)', async () => {
    const { adapter: model } = await loadModel(DEMO);
    const input = tf.zeros([1, 28, 28, 1]) as tf.Tensor4D;
    const ctx = await methodContext(model, input, { classes: Array.from({ length: 10 }, (_, i) => String(i)) });
    const digits = [0, 3, 7];
    const arts = await runMethod(classVisualization, ctx, { classes: digits });
    for (const [i, a] of arts.entries()) {
      expect(a.class).toBe(digits[i]);
      expect(a.stats?.topClass).toBe(digits[i]);
      expect(a.stats?.probability as number).toBeGreaterThanOrEqual(0.9);
    }
    input.dispose();
    model.dispose();
  });

  it.skipIf(!haveFixtures)('Darknet Tiny: "bald eagle" in a few steps gives a finite image and records its probability', async () => {
    const { adapter: model } = await loadModel(resolve(FIXTURES, 'darknet-tiny'));
    const labels = readFileSync(resolve(FIXTURES, 'darknet-tiny/labels.txt'), 'utf8').split('\n');
    const { data } = await sharp(resolve(FIXTURES, 'photos/eagle.jpg')).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
    const input = tf.tensor4d(Float32Array.from(data, (v) => v / 255), [1, 224, 224, 3]);
    const logger = new MemoryLogger();
    const ctx = await methodContext(model, input, { classes: labels, logger });
    const arts = await runMethod(classVisualization, ctx, { classes: ['bald eagle'], steps: 3 });
    const [a] = arts;
    expect(a.class).toBe(labels.indexOf('bald eagle'));
    expect(a.className).toBe('bald eagle');
    const raw = await readRaw(ctx, a);
    expect(raw.shape).toEqual([224, 224, 3]);
    expect(raw.data.every(Number.isFinite)).toBe(true);
    const p = a.stats?.probability as number;
    expect(p).toBeGreaterThanOrEqual(0);
    expect(p).toBeLessThanOrEqual(1);
    expect(a.stats?.reached).toBe(p >= 0.5);
    expect([a.width, a.height]).toEqual([224, 224]);
    input.dispose();
    model.dispose();
  });
});
