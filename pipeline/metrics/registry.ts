import { deletion } from './deletion.ts';
import { insertion } from './insertion.ts';
import { pointingGame } from './pointing-game.ts';
import { randomization } from './randomization.ts';

export { defineMetric, type MetricDef, type MetricKey } from './metric.ts';

/**
 * The one list of metrics, in the order they run and appear in metrics.json. The table
 * (table.ts) and the curve pictures (curve-pictures.ts) are steps after them.
 */
export const METRICS = [deletion, insertion, pointingGame, randomization] as const;
