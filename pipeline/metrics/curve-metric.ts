import { perturbationCount, perturbationCurvesPooled, stepFractions, trapezoidAuc, type CurveSpec } from './curves.ts';
import { r6, type Evaluation } from './evaluation.ts';
import type { CurveMetric } from './types.ts';

/**
 * The part deletion and insertion share: for every sample and every row (methods, then the
 * baselines) the target probability along the path from `start(i)` to `end(i)`, pixels taken in
 * the row's map order, `pixelsPerStep` = min(P, pps ?? ceil(P / steps)) at a time (curves.ts);
 * per curve its trapezoid AUC, per method the mean curve and AUC over its samples.
 */
export async function curveMetric(ev: Evaluation, label: 'deletion' | 'insertion', steps: number, pps: number | undefined, start: (i: number) => Float32Array, end: (i: number) => Float32Array): Promise<CurveMetric> {
  const { ctx, P, H, W, C, sampleRows, orderOf, allIds } = ev;
  const { logger } = ctx;
  const pixelsPerStep = Math.min(P, pps ?? Math.ceil(P / steps));
  const fractions = stepFractions(P, pixelsPerStep);
  const specs: (CurveSpec & { sample: number; method: string })[] = [];
  ctx.samples.forEach((_, i) => {
    for (const r of sampleRows[i]) specs.push({ sample: i, method: r.method, start: start(i), end: end(i), order: orderOf(i, r.method, r.map), target: r.class });
  });
  const bar = logger.progress(`metrics: ${label}`, perturbationCount(specs, P, pixelsPerStep));
  const curves = await perturbationCurvesPooled(ctx.model, ctx.pool, [H, W, C], specs, pixelsPerStep, ctx.settings.batchSize, bar);
  bar.done(`${specs.length} curves of ${fractions.length} points`);
  const samples = ctx.samples.map((s, i) => ({
    id: s.id,
    methods: specs.map((sp, j) => ({ sp, j })).filter(({ sp }) => sp.sample === i).map(({ sp, j }) => ({
      method: sp.method, class: sp.target, auc: r6(trapezoidAuc(fractions, curves[j])), curve: curves[j].map(r6),
    })),
  }));
  const mean = allIds.map((method) => {
    const entries = samples.flatMap((s) => s.methods.filter((e) => e.method === method));
    const curve = fractions.map((_, k) => r6(entries.reduce((a, e) => a + e.curve[k], 0) / entries.length));
    return { method, auc: r6(entries.reduce((a, e) => a + e.auc, 0) / entries.length), curve, samples: entries.length };
  }).filter((m) => m.samples > 0);
  return { steps: fractions.length - 1, pixelsPerStep, fractions: fractions.map(r6), samples, mean };
}
