/**
 * Deconvnet: dx = max(dy, 0) at every ReLU (the forward mask is ignored). The raw gradient equals the hand-computed one on a single-ReLU model and on a
 * hand-written GraphModel, the standard rule is back afterwards, and it runs on Darknet Tiny.
 * Cases: test/helpers/relu-rule-method.ts.
 */
import { beforeAll, describe, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { deconvnet } from '../../pipeline/methods/deconvnet.ts';
import { haveFixtures } from '../helpers/attribution-models.ts';
import { checkDarknet, checkGraphModel, checkSingleRelu } from '../helpers/relu-rule-method.ts';

if (!haveFixtures) console.warn('skipping the Darknet Tiny deconvnet test: ../shared/fixtures is absent');

describe('deconvnet', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('gives the deconvnet gradient on y = sum(w * relu(x)) and restores the standard rule', async () => {
    await checkSingleRelu(deconvnet, 'deconvnet');
  });

  it('applies to GraphModels too (hand-computed gradient of a conv-relu-mean-matmul graph)', async () => {
    await checkGraphModel(deconvnet, 'deconvnet');
  });

  it.skipIf(!haveFixtures)('runs on the real Darknet Tiny for chelsea.png', async () => {
    await checkDarknet(deconvnet);
  }, 120_000);
});
