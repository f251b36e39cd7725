/**
 * Guided backpropagation: dx = max(dy, 0) * [x > 0] at every ReLU. The raw gradient equals the hand-computed one on a single-ReLU model and on a
 * hand-written GraphModel, the standard rule is back afterwards, and it runs on Darknet Tiny.
 * Cases: test/helpers/relu-rule-method.ts.
 */
import { beforeAll, describe, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { guidedBackprop } from '../../pipeline/methods/guided-backprop.ts';
import { haveFixtures } from '../helpers/attribution-models.ts';
import { checkDarknet, checkGraphModel, checkSingleRelu } from '../helpers/relu-rule-method.ts';

if (!haveFixtures) console.warn('skipping the Darknet Tiny guided-backprop test: ../shared/fixtures is absent');

describe('guided-backprop', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('gives the guided gradient on y = sum(w * relu(x)) and restores the standard rule', async () => {
    await checkSingleRelu(guidedBackprop, 'guided');
  });

  it('applies to GraphModels too (hand-computed gradient of a conv-relu-mean-matmul graph)', async () => {
    await checkGraphModel(guidedBackprop, 'guided');
  });

  it.skipIf(!haveFixtures)('runs on the real Darknet Tiny for chelsea.png', async () => {
    await checkDarknet(guidedBackprop);
  }, 120_000);
});
