import type { Evaluation } from './evaluation.ts';
import type { MetricsOptions } from './options.ts';
import type { MetricsJson } from './types.ts';

/** The metrics' keys: each is `metrics.<key>` in viz.yaml (options.ts) and `<key>` in metrics.json (types.ts). */
export type MetricKey = 'deletion' | 'insertion' | 'pointingGame' | 'randomization';

/**
 * One trust metric. `run` gets the evaluated maps (evaluation.ts: the methods' maps read back
 * from the release, the random baselines, the sample images) and the metric's options
 * (`metrics.<key>`, parsed, `enabled` true), and returns its part of metrics.json; a metric that
 * flags methods pushes onto `ev.flags`.
 */
export interface MetricDef<K extends MetricKey = MetricKey> {
  /** Kebab-case id, for logs and docs. */
  id: string;
  title: string;
  /** The paper it follows. */
  paper: string;
  key: K;
  run(ev: Evaluation, opts: MetricsOptions[K]): Promise<NonNullable<MetricsJson[K]>>;
}

export function defineMetric<K extends MetricKey>(def: MetricDef<K>): MetricDef<K> {
  return def;
}
