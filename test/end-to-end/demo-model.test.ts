import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { loadDigits } from '../../pipeline/demo/digits.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { loadModel } from '../../pipeline/model/load.ts';

const DIR = resolve(import.meta.dirname, '../../models/demo-mnist');

describe('the committed demo model', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('reaches the test accuracy recorded in training.json (and the README), at least 98%', async () => {
    const recorded = JSON.parse(readFileSync(resolve(DIR, 'training.json'), 'utf8')) as { testAccuracy: number; testCount: number };
    const { adapter } = await loadModel(DIR);
    expect(adapter.inputShape).toEqual([28, 28, 1]);
    expect(adapter.lastSpatialLayer().name).toBe('conv5');
    const { test } = await loadDigits();
    expect(test.count).toBe(recorded.testCount);
    let correct = 0;
    for (let s = 0; s < test.count; s += 256) {
      const n = Math.min(256, test.count - s);
      const pred = tf.tidy(() => tf.argMax(adapter.probabilities(tf.tensor4d(test.x.subarray(s * 784, (s + n) * 784), [n, 28, 28, 1])), 1).dataSync());
      for (let i = 0; i < n; i++) if (pred[i] === test.y[s + i]) correct++;
    }
    const accuracy = correct / test.count;
    expect(accuracy).toBeCloseTo(recorded.testAccuracy, 9);
    expect(accuracy).toBeGreaterThanOrEqual(0.98);
    const bytes = readFileSync(resolve(DIR, 'weights.bin')).length;
    expect(bytes).toBeLessThan(1024 * 1024);
    adapter.dispose();
  });
});
