import { curvesSvg, rasterize, type ChartPanel } from './chart.ts';
import type { MetricsContext } from './evaluation.ts';
import type { CurveMetric, MetricsJson } from './types.ts';

/**
 * The chart step: deletion and insertion curves drawn (chart.ts) per sample and as the mean
 * over the samples, one line per method and a dashed line per random baseline, with each line's
 * AUCs in the legend; written as `metrics/<sample>/curves` and `metrics/mean-curves`.
 */
export async function writeCurvePictures(ctx: MetricsContext, json: MetricsJson, titleOf: (id: string) => string): Promise<void> {
  const isBaseline = (id: string) => json.methods.some((m) => m.id === id && m.baseline);
  const label = (id: string) => json.methods.find((m) => m.id === id)?.title ?? titleOf(id);
  const panelsFor = (pick: (c: CurveMetric) => { method: string; curve: number[] }[]): { panels: ChartPanel[]; ids: string[] } => {
    const ids = json.methods.map((m) => m.id).filter((id) => [json.deletion, json.insertion].some((c) => c && pick(c).some((e) => e.method === id)));
    const panels: ChartPanel[] = [];
    for (const [c, title, xLabel] of [[json.deletion, 'Deletion (lower is better)', 'fraction of pixels removed'], [json.insertion, 'Insertion (higher is better)', 'fraction of pixels revealed']] as const) {
      if (!c) continue;
      const entries = pick(c);
      panels.push({
        title, xLabel, yLabel: 'p(class)', x: c.fractions,
        lines: ids.map((id) => ({ label: label(id), values: entries.find((e) => e.method === id)?.curve ?? [], baseline: isBaseline(id) })),
      });
    }
    return { panels, ids };
  };
  const legendFor = (ids: string[], auc: (c: CurveMetric, id: string) => number | undefined) => ids.map((id) => ({
    label: label(id),
    baseline: isBaseline(id),
    detail: [json.deletion && `del ${fmt(auc(json.deletion, id))}`, json.insertion && `ins ${fmt(auc(json.insertion, id))}`].filter(Boolean).join(' · '),
  }));
  for (const s of ctx.samples) {
    const of = (c: CurveMetric) => c.samples.find((x) => x.id === s.id)?.methods ?? [];
    const { panels, ids } = panelsFor(of);
    if (ids.length === 0) continue;
    const chart = curvesSvg(`Deletion and insertion curves: ${s.source}`, panels, legendFor(ids, (c, id) => of(c).find((e) => e.method === id)?.auc));
    await ctx.out.image(`metrics/${s.id}`, 'curves', {
      id: `metrics/${s.id}/curves`,
      method: 'metrics',
      image: s.id,
      title: 'Deletion and insertion curves',
      alt: `Line charts for sample ${s.source}: the probability of the explained class as pixels are removed in each map's order (deletion) and revealed on a blurred copy (insertion), one line per method and a dashed random baseline`,
    }, await rasterize(chart.svg));
  }
  const { panels, ids } = panelsFor((c) => c.mean);
  const chart = curvesSvg(`Mean deletion and insertion curves over ${ctx.samples.length} sample${ctx.samples.length === 1 ? '' : 's'}`, panels, legendFor(ids, (c, id) => c.mean.find((e) => e.method === id)?.auc));
  await ctx.out.image('metrics', 'mean-curves', {
    id: 'metrics/mean-curves',
    method: 'metrics',
    title: 'Mean deletion and insertion curves',
    alt: 'Line charts of the mean probability of the explained class over the samples as pixels are removed (deletion) and revealed (insertion) in each method\'s order, one line per method and a dashed random baseline',
  }, await rasterize(chart.svg));
}

const fmt = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(3));
