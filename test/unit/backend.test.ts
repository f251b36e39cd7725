/**
 * Compute backend selection and the cpu kernels bridged into wasm (MaxPoolGrad, which wasm gets
 * wrong for negative windows, and Conv2DBackpropFilter, which wasm lacks). Every test leaves the
 * wasm backend active.
 */
import * as tf from '@tensorflow/tfjs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { activeBackend, bridgedKernelsUsed, initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { MemoryLogger, silentLogger } from '../../pipeline/logger.ts';
import { maxAbsDiff } from '../helpers/finite-diff.ts';
import { vals } from '../helpers/tiny-models.ts';

beforeAll(async () => {
  tf.enableProdMode(); // silences tfjs' "install tfjs-node" notice when the cpu backend is first used
  await initBackend('wasm', silentLogger);
});

afterEach(async () => {
  if (tf.getBackend() !== 'wasm') await initBackend('wasm', silentLogger);
  expect(tf.getBackend()).toBe('wasm');
});

/** Runs fn on the cpu backend, then switches back to wasm. Inputs must be plain arrays. */
async function onCpu<T>(fn: () => T): Promise<T> {
  await initBackend('cpu', silentLogger);
  try {
    expect(tf.getBackend()).toBe('cpu');
    return fn();
  } finally {
    await initBackend('wasm', silentLogger);
  }
}

describe('kernels bridged from cpu into wasm', () => {
  // 8x8x2, every value negative and distinct: the max of each 2x2/2 window is negative
  const xVals = Array.from({ length: 8 * 8 * 2 }, (_, i) => -1 - ((i * 37) % 128) / 16);

  const maxPoolGrad = () => tf.tidy(() => {
    const x = tf.tensor4d(xVals, [1, 8, 8, 2]);
    return Array.from(tf.grad((v: tf.Tensor) => tf.sum(tf.maxPool(v as tf.Tensor4D, 2, 2, 'valid')))(x).dataSync());
  });

  it('MaxPoolGrad on an all-negative input gives each window max a gradient of 1', async () => {
    expect(new Set(xVals).size).toBe(xVals.length); // no ties
    expect(Math.max(...xVals)).toBeLessThan(0);
    expect(tf.getBackend()).toBe('wasm');
    const g = maxPoolGrad();
    // 4x4 windows per channel, 2 channels: 32 windows, one 1 each
    expect(g.reduce((a, b) => a + b, 0)).toBe(32);
    expect(g.filter((v) => v === 1).length).toBe(32);
    expect(g.every((v) => v === 0 || v === 1)).toBe(true);
    // the 1s sit on each window's maximum
    for (let c = 0; c < 2; c++) for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
      const idx = [0, 1].flatMap((di) => [0, 1].map((dj) => ((2 * i + di) * 8 + 2 * j + dj) * 2 + c));
      const argmax = idx.reduce((best, k) => (xVals[k] > xVals[best] ? k : best), idx[0]);
      expect(g[argmax], `window ${i},${j},${c}`).toBe(1);
    }
    const cpu = await onCpu(maxPoolGrad);
    expect(g).toEqual(cpu);
  });

  it('MaxPoolGrad equals cpu for overlapping windows, same padding, ties and odd sizes', async () => {
    // values on a coarse grid so ties occur; a weighted sum so dy differs per output
    const shape: [number, number, number, number] = [2, 7, 9, 3];
    const xs = Array.from({ length: 2 * 7 * 9 * 3 }, (_, i) => ((i * 53) % 11) - 5);
    // [2, 2, 'valid'] takes the unrolled 2x2 path, the others the general loop
    const cases: [number, number, 'same' | 'valid'][] = [[3, 2, 'same'], [3, 1, 'valid'], [2, 2, 'same'], [3, 3, 'valid'], [2, 2, 'valid']];
    for (const [size, stride, pad] of cases) {
      const grad = () => tf.tidy(() => {
        const x = tf.tensor4d(xs, shape);
        return Array.from(tf.grad((v: tf.Tensor) => {
          const y = tf.maxPool(v as tf.Tensor4D, size, stride, pad);
          return tf.sum(tf.mul(y, tf.range(1, y.size + 1).reshape(y.shape)));
        })(x).dataSync());
      });
      const onWasm = grad();
      expect(onWasm, `${size}/${stride} ${pad}`).toEqual(await onCpu(grad));
    }
  });

  it('Conv2DBackpropFilter (a weight gradient) on wasm equals cpu', async () => {
    const x = vals(2 * 5 * 5 * 3, 1, 1);
    const f = vals(3 * 3 * 3 * 4, 2, 1);
    const dyW = vals(2 * 5 * 5 * 4, 3, 1);
    const filterGrad = () => tf.tidy(() => {
      const xt = tf.tensor4d(x, [2, 5, 5, 3]);
      const wt = tf.tensor4d(dyW, [2, 5, 5, 4]);
      const g = tf.grad((k: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xt, k as tf.Tensor4D, 1, 'same'), wt)))(tf.tensor4d(f, [3, 3, 3, 4]));
      return Array.from(g.dataSync());
    });
    expect(tf.getBackend()).toBe('wasm');
    const wasm = filterGrad();
    expect(tf.getBackend()).toBe('wasm');
    const cpu = await onCpu(filterGrad);
    expect(wasm).toHaveLength(3 * 3 * 3 * 4);
    expect(maxAbsDiff(wasm, cpu)).toBeLessThan(1e-5);
    // a hand check of one entry: dK[0,0,0,0] = sum_{b,i,j} x[b,i-1,j-1,0] * dy[b,i,j,0]
    let e = 0;
    for (let b = 0; b < 2; b++) for (let i = 1; i < 5; i++) for (let j = 1; j < 5; j++) {
      e += x[((b * 5 + i - 1) * 5 + j - 1) * 3] * dyW[((b * 5 + i) * 5 + j) * 4];
    }
    expect(wasm[0]).toBeCloseTo(e, 4);
  });

  it('the bridged kernels leak no tensors', () => {
    const before = tf.memory().numTensors;
    maxPoolGrad();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('initBackend', () => {
  it('an explicit "tensorflow" that is not installed is a ConvlensError naming compute.backend, with the install hint', async () => {
    const log = new MemoryLogger();
    const err = await initBackend('tensorflow', log).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as ConvlensError).message).toContain('compute.backend');
    expect((err as ConvlensError).message).toContain('"tensorflow"');
    expect((err as ConvlensError).hint).toContain('npm install @tensorflow/tfjs-node');
    expect((err as ConvlensError).hint).not.toContain('tfjs-node-gpu');
    // nothing switched
    expect(tf.getBackend()).toBe('wasm');
    expect(log.records.filter((r) => r.level === 'info')).toEqual([]);
  });

  it('"tensorflow-gpu" names the gpu package', async () => {
    const err = await initBackend('tensorflow-gpu', silentLogger).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as ConvlensError).hint).toContain('npm install @tensorflow/tfjs-node-gpu');
  });

  it('"auto" falls back to wasm and logs why and what it chose', async () => {
    await initBackend('cpu', silentLogger); // start elsewhere, so the switch is real
    expect(tf.getBackend()).toBe('cpu');
    const log = new MemoryLogger();
    const info = await initBackend('auto', log);
    expect(info.name).toBe('wasm');
    expect(info.tfjsBackend).toBe('wasm');
    expect(info.tfjsVersion).toBe(tf.version.tfjs);
    expect(tf.getBackend()).toBe('wasm');
    expect(activeBackend()).toEqual(info);
    const debug = log.records.filter((r) => r.level === 'debug').map((r) => r.msg);
    expect(debug).toHaveLength(2);
    expect(debug[0]).toMatch(/^backend tensorflow-gpu unavailable: /);
    expect(debug[1]).toMatch(/^backend tensorflow unavailable: /);
    expect(log.records.filter((r) => r.level === 'info').map((r) => r.msg)).toEqual([`backend: wasm (auto), tfjs ${tf.version.tfjs}`]);
    expect(log.records.filter((r) => r.level === 'warn')).toEqual([]);
  });

  it('an explicit choice logs it without "(auto)"', async () => {
    const log = new MemoryLogger();
    await initBackend('cpu', log);
    expect(tf.getBackend()).toBe('cpu');
    expect(log.records).toEqual([{ level: 'info', msg: `backend: cpu, tfjs ${tf.version.tfjs}` }]);
    // afterEach restores wasm
  });

  it('names a bridged kernel the first time it runs, at debug level (what --debug prints)', async () => {
    const log = new MemoryLogger();
    await initBackend('wasm', log);
    expect(bridgedKernelsUsed().has('UnsortedSegmentSum')).toBe(false);
    tf.tidy(() => tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3]), tf.tensor1d([0, 1, 0], 'int32'), 2).dataSync());
    tf.tidy(() => tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3]), tf.tensor1d([0, 1, 0], 'int32'), 2).dataSync());
    expect(bridgedKernelsUsed().has('UnsortedSegmentSum')).toBe(true);
    const lines = log.records.filter((r) => r.level === 'debug' && r.msg.includes('UnsortedSegmentSum'));
    expect(lines).toEqual([{ level: 'debug', msg: "wasm has no UnsortedSegmentSum kernel: running the cpu backend's (slower; inputs copied out of the wasm heap and back)" }]);
  });
});
