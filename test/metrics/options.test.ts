import { describe, expect, it } from 'vitest';
import { metricsOptions, metricsProblems } from '../../pipeline/metrics/options.ts';

describe('metrics options', () => {
  it('fills every default from an empty section and refuses unknown keys', () => {
    expect(metricsOptions.parse(undefined)).toEqual({
      enabled: true, methods: 'all', baselineSeed: 0, curves: true,
      deletion: { enabled: true, steps: 25, fill: 'dataset-mean' },
      insertion: { enabled: true, steps: 25, sigma: 5 },
      randomization: { enabled: true, maxSteps: 6, seed: 0, threshold: 0.5, maxPasses: 8 },
      pointingGame: { enabled: true, tolerance: 15 },
    });
    expect(metricsOptions.safeParse({ deletion: { stepz: 3 } }).success).toBe(false);
    expect(metricsOptions.safeParse({ deletion: { fill: 300 } }).success).toBe(false);
    expect(metricsOptions.parse({ deletion: { fill: 128, pixelsPerStep: 224 } }).deletion).toEqual({ enabled: true, steps: 25, fill: 128, pixelsPerStep: 224 });
  });

  it('names unknown method ids with the nearest ones', () => {
    const opts = metricsOptions.parse({ methods: ['grad-cam', 'gradcam'], randomization: { methods: ['saliency', 'occlsion'] } });
    expect(metricsProblems(opts, ['grad-cam', 'saliency', 'occlusion'])).toEqual([
      { path: 'metrics.methods.1', message: 'no method "gradcam"; nearest: grad-cam, saliency, occlusion' },
      { path: 'metrics.randomization.methods.1', message: 'no method "occlsion"; nearest: occlusion, saliency, grad-cam' },
    ]);
    expect(metricsProblems(metricsOptions.parse({}), ['grad-cam'])).toEqual([]);
  });
});
