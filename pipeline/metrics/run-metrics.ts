import type { z } from 'zod';
import { writeCurvePictures } from './curve-pictures.ts';
import { evaluate, type MetricsContext, type MetricsInput } from './evaluation.ts';
import type { MetricDef, MetricKey } from './metric.ts';
import { metricsOptions, type MetricsOptions } from './options.ts';
import { METRICS } from './registry.ts';
import { metricsTable } from './table.ts';
import type { MetricsJson } from './types.ts';

export { selectMapArtifacts, type MetricsContext, type MetricsInput } from './evaluation.ts';

/**
 * The metrics stage, after the methods ran and before the manifest is written, in steps:
 *  1. evaluation.ts reads every evaluated method's per-sample maps back from the release being
 *     written and makes the random baselines;
 *  2. each metric of the registry (registry.ts) that `metrics.<key>.enabled` leaves on adds its
 *     part of metrics.json (types.ts), in registry order;
 *  3. the summary table (table.ts `metricsTable`);
 *  4. `metrics/metrics.json`, then the curve pictures (curve-pictures.ts) when `metrics.curves`.
 */
export async function runMetrics(ctx: MetricsContext, input: MetricsInput, options: MetricsOptions | z.input<typeof metricsOptions> = {}): Promise<MetricsJson | undefined> {
  const opts = metricsOptions.parse(options);
  if (!opts.enabled) return undefined;
  const ev = await evaluate(ctx, input, opts);
  if (!ev) return undefined;
  const json: MetricsJson = {
    version: 1,
    samples: ctx.samples.map((s) => ({ id: s.id, source: s.source })),
    methods: ev.methods,
    table: [],
    flags: ev.flags,
  };
  const runOne = async <K extends MetricKey>(metric: MetricDef<K>) => {
    const o = opts[metric.key];
    if (o.enabled) json[metric.key] = await metric.run(ev, o);
  };
  for (const metric of METRICS as readonly MetricDef[]) await runOne(metric);
  json.table = metricsTable(json);
  await ctx.out.data('metrics', 'metrics', {
    id: 'metrics/metrics',
    method: 'metrics',
    title: 'Trust metrics: deletion, insertion, randomization test, pointing game',
    stats: { samples: ctx.input.shape[0], methods: ev.methodIds.length, flagged: json.flags.length },
  }, json);
  if (opts.curves && (json.deletion || json.insertion)) await writeCurvePictures(ctx, json, ev.titleOf);
  return json;
}
