/**
 * The shape of `metrics/metrics.json` (the `data` artifact with method "metrics"). Numbers are
 * rounded to 6 significant digits; `null` marks a value that could not be computed.
 */

export interface MetricsMethod {
  id: string;
  title: string;
  /** A random-map baseline, not a method. */
  baseline?: boolean;
  /** Baselines: the noise grid [rows, cols] upsampled to the input (the input size: per pixel). */
  grid?: [number, number];
  /** Methods: the id of the baseline of the same grid, the one this method is compared with. */
  against?: string;
}

export interface CurveEntry {
  method: string;
  /** Class whose probability the curve follows (the map's class). */
  class: number;
  auc: number;
  /** Target-class probability at each of `fractions`. */
  curve: number[];
}

export interface CurveMetric {
  steps: number;
  pixelsPerStep: number;
  /** Fraction of the pixels removed (deletion) or revealed (insertion) at each curve point, 0..1. */
  fractions: number[];
  samples: { id: string; methods: CurveEntry[] }[];
  /** Per method: mean AUC and mean curve over the samples it has maps for. */
  mean: { method: string; auc: number; curve: number[]; samples: number }[];
}

export interface DeletionMetric extends CurveMetric {
  /** What removed pixels became, in input space (model channel order), and where that came from. */
  fill: { source: 'dataset' | 'samples' | 'value'; input: number[]; pixel?: number; images?: number };
}

export interface InsertionMetric extends CurveMetric {
  sigma: number;
}

export interface RandomizationStep {
  /** 1-based position in the cascade. */
  step: number;
  /** The lowest layer randomized at this step; every weighted layer above it is randomized too. */
  layer: string;
  /** How many weighted layers are randomized (from the top). */
  randomized: number;
}

export interface RandomizationMethod {
  method: string;
  /** Mean over samples of Spearman(|original|, |randomized|), per step. */
  abs: (number | null)[];
  /** Mean over samples of Spearman(original, randomized), per step. */
  signed: (number | null)[];
  /** `abs` after the full cascade (the last step). */
  final: number | null;
  /** final > threshold: the method fails the check. */
  flagged: boolean;
  /** Layers randomized (from the top) at the last step of the unbroken run of steps, from the first, with abs > threshold; 0 if none. */
  insensitiveUpTo: number;
  samples: { id: string; abs: (number | null)[]; signed: (number | null)[] }[];
}

export interface RandomizationMetric {
  /** Why the test did not run, when it did not (no steps). */
  note?: string;
  seed: number;
  threshold: number;
  /** Weighted layers, from the top (output layer first). */
  layers: string[];
  steps: RandomizationStep[];
  methods: RandomizationMethod[];
  /** Evaluated methods left out for their cost (model passes per sample above `maxPasses`). */
  skipped?: { method: string; passes: number }[];
}

export interface PointingMetric {
  /** Tolerance in input pixels (the option scaled to the input size). */
  tolerance: number;
  /** Boxes in input pixels for the samples that have one. */
  boxes: { id: string; box: [number, number, number, number] }[];
  methods: { method: string; hits: number; total: number; accuracy: number | null; samples: { id: string; class: number; hit: boolean; point: [number, number] }[] }[];
}

export interface MetricsFlag {
  method: string;
  metric: 'randomization';
  /**
   * fail: |map| correlation above the threshold after the full cascade (the method is flagged);
   * warn: above it while at least half of the weighted layers, from the top, are randomized.
   */
  severity: 'fail' | 'warn';
  message: string;
}

/** One row of the summary table: a method (or the random baseline) against every metric. */
export interface MetricsRow {
  method: string;
  title: string;
  baseline: boolean;
  deletion: number | null;
  insertion: number | null;
  /** Spearman of |map| after the full cascade. */
  randomization: number | null;
  pointing: number | null;
  /** Fails the randomization check (a `fail` flag). */
  flagged: boolean;
  /** Has a `warn` flag: insensitive to the top half of the layers. */
  warned: boolean;
  /** Columns where this row is the best method (the baseline is never best). */
  best: ('deletion' | 'insertion' | 'randomization' | 'pointing')[];
  /** Methods: the baseline of the same grid (MetricsMethod.against). */
  against?: string;
  /** Methods: whether the mean AUC is better than that baseline's (null: either is missing). */
  beats?: { deletion: boolean | null; insertion: boolean | null };
}

export interface MetricsJson {
  version: 1;
  samples: { id: string; source: string }[];
  methods: MetricsMethod[];
  table: MetricsRow[];
  flags: MetricsFlag[];
  deletion?: DeletionMetric;
  insertion?: InsertionMetric;
  randomization?: RandomizationMetric;
  pointingGame?: PointingMetric;
}
