import { z } from 'zod';
import { ConvlensError } from './errors.ts';
import { LayerSummary, type Artifact } from './manifest.ts';
import type { MetricsJson } from './metrics/types.ts';

/**
 * The shapes of the JSON data files a release holds (the `kind: 'data'` artifacts), one schema per
 * file, declared once as the manifest's is: the writer is typed by its z.infer type (a field
 * it adds or renames is a type error), and the site parses with it
 * (`parseDataFile`), so a file that drifts stops the site build with a line naming the file and
 * the field instead of rendering an empty page. Objects are strict: an unknown field is an error.
 * Paths are release-relative with `/`; classes are model output indices; probabilities in [0, 1].
 */

/** An image of the dataset among a class's most or least sure predictions. */
export const DatasetExample = z.strictObject({
  /** The name as the user gave it (folder-relative path, list entry). */
  source: z.string(),
  id: z.string().optional(),
  /** Class index, null when the image has no label. */
  label: z.number().int().nullable().optional(),
  /** p(class of the list) for this image. */
  probability: z.number(),
  /** Release path of the thumbnail (listed in the artifact's `files`). */
  thumbnail: z.string().min(1),
});
export type DatasetExample = z.infer<typeof DatasetExample>;

export const ClassPredictions = z.strictObject({
  class: z.number().int().nonnegative(),
  name: z.string().optional(),
  /** Labelled images of the class. */
  count: z.number(),
  /** Images whose top-1 prediction is the class. */
  predicted: z.number().optional(),
  /** correct / count, null without labelled images. */
  accuracy: z.number().nullable().optional(),
  /** Among the images labelled c (unlabelled: predicted c), the highest and the lowest p(c), best first. */
  mostSure: z.array(DatasetExample).default([]),
  leastSure: z.array(DatasetExample).default([]),
});
export type ClassPredictions = z.infer<typeof ClassPredictions>;

/** `dataset-predictions/predictions.json` (methods/dataset-predictions.ts). */
export const DatasetPredictionsFile = z.strictObject({
  count: z.number(),
  labelled: z.number().optional(),
  /** Top-1 accuracy over the labelled images, null without any. */
  accuracy: z.number().nullable().optional(),
  perClass: z.array(ClassPredictions),
  /** Sparse confusion matrix: [label, prediction, count] triples. */
  confusion: z.array(z.array(z.number().int().nonnegative()).length(3)).optional(),
});
export type DatasetPredictionsFile = z.infer<typeof DatasetPredictionsFile>;

/** One dataset image placed in 2-D. */
export const EmbeddingPoint = z.strictObject({
  id: z.string().optional(),
  x: z.number(),
  y: z.number(),
  /** Class index; null when unlabelled or labelled by a name that is no class. */
  label: z.number().int().nullable().optional(),
  /** The label as written (present where the image has one). */
  labelName: z.string().nullable().optional(),
  /** Top-1 class index and name, and its probability. */
  prediction: z.number().int().nonnegative(),
  predictionName: z.string().optional(),
  confidence: z.number().optional(),
  /** Release path of the thumbnail (listed in the artifact's `files`). */
  thumb: z.string().optional(),
  source: z.string().optional(),
});
export type EmbeddingPoint = z.infer<typeof EmbeddingPoint>;

/** `embedding/points.json` (methods/embedding.ts). */
export const EmbeddingFile = z.strictObject({
  algorithm: z.string().optional(),
  implementation: z.string().optional(),
  layer: z.string().optional(),
  /** Feature dimensions before the reduction. */
  dims: z.number().int().optional(),
  stats: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).optional(),
  /** One entry per colour group of the static scatter: `group` is the class index, or a number after them for a label name. */
  legend: z.array(z.strictObject({
    group: z.number().int().optional(),
    label: z.number().int().nullable().optional(),
    name: z.string(),
    color: z.string(),
    count: z.number().int().optional(),
  })).optional(),
  points: z.array(EmbeddingPoint),
});
export type EmbeddingFile = z.infer<typeof EmbeddingFile>;

/** A box in model-input pixels: rows [top, top + height), columns [left, left + width). */
const Box = z.strictObject({ top: z.number(), left: z.number(), height: z.number(), width: z.number() });
/** One axis of a receptive field: unit u covers [start + u * jump, start + u * jump + size); null where branches with different jumps meet. */
const AxisAffine = z.strictObject({ jump: z.number(), start: z.number(), size: z.number() }).nullable();

export const TopPatchRow = z.strictObject({
  /** 1 for the strongest. */
  rank: z.number().int().positive(),
  /** Index into the dataset listing. */
  imageIndex: z.number().int().nonnegative(),
  id: z.string(),
  source: z.string(),
  label: z.number().int().optional(),
  labelName: z.string().optional(),
  /** The unit's position in the feature map and its activation. */
  y: z.number().int(),
  x: z.number().int(),
  value: z.number(),
  /** The input pixels that can reach the unit (clipped), and its full receptive field (may leave the image). */
  box: Box,
  rf: Box,
});
export type TopPatchRow = z.infer<typeof TopPatchRow>;

export const TopPatchChannel = z.strictObject({
  channel: z.number().int().nonnegative(),
  /** Artifact id of the channel's patch grid. */
  grid: z.string(),
  patches: z.array(TopPatchRow),
});
export type TopPatchChannel = z.infer<typeof TopPatchChannel>;

/** `top-patches/<layer>/patches.json` (methods/top-patches.ts). */
export const TopPatchesFile = z.strictObject({
  layer: z.string(),
  k: z.number().int().positive(),
  onePerImage: z.boolean(),
  datasetImages: z.number().int().nonnegative(),
  featureMap: z.strictObject({ height: z.number().int(), width: z.number().int(), channels: z.number().int() }),
  receptiveField: z.strictObject({ rows: AxisAffine, columns: AxisAffine }),
  /** Inputs broadcast into a larger map, left out of the field. */
  broadcastInputs: z.array(z.string()),
  /** What `box` and `rf` mean, for a reader of the file alone. */
  boxes: z.string(),
  channels: z.array(TopPatchChannel),
});
export type TopPatchesFile = z.infer<typeof TopPatchesFile>;

/** `model-summary/summary.json` (methods/model-summary.ts): the layers as in Keras' model.summary(). */
export const ModelSummaryFile = z.strictObject({
  format: z.string(),
  /** [height, width, channels]. */
  inputShape: z.array(z.number().int()),
  classes: z.number().int().nonnegative(),
  totalParams: z.number().int().nonnegative(),
  layers: z.array(LayerSummary),
});
export type ModelSummaryFile = z.infer<typeof ModelSummaryFile>;

// ---- metrics/metrics.json (pipeline/metrics/; field meanings in metrics/types.ts) ----------------

const nullableNumber = z.number().nullable();
const CurveEntry = z.strictObject({ method: z.string(), class: z.number().int(), auc: z.number(), curve: z.array(z.number()) });
const curveMetric = {
  steps: z.number().int(),
  pixelsPerStep: z.number(),
  fractions: z.array(z.number()),
  samples: z.array(z.strictObject({ id: z.string(), methods: z.array(CurveEntry) })),
  mean: z.array(z.strictObject({ method: z.string(), auc: z.number(), curve: z.array(z.number()), samples: z.number().int() })),
};
const Column = z.enum(['deletion', 'insertion', 'randomization', 'pointing']);

/** `metrics/metrics.json` (metrics/run-metrics.ts); its type equals `MetricsJson` (checked below). */
export const MetricsFile = z.strictObject({
  version: z.literal(1),
  samples: z.array(z.strictObject({ id: z.string(), source: z.string() })),
  methods: z.array(z.strictObject({
    id: z.string(),
    title: z.string(),
    baseline: z.boolean().optional(),
    grid: z.tuple([z.number(), z.number()]).optional(),
    against: z.string().optional(),
  })),
  table: z.array(z.strictObject({
    method: z.string(),
    title: z.string(),
    baseline: z.boolean(),
    deletion: nullableNumber,
    insertion: nullableNumber,
    randomization: nullableNumber,
    pointing: nullableNumber,
    flagged: z.boolean(),
    warned: z.boolean(),
    best: z.array(Column),
    against: z.string().optional(),
    beats: z.strictObject({ deletion: z.boolean().nullable(), insertion: z.boolean().nullable() }).optional(),
  })),
  flags: z.array(z.strictObject({ method: z.string(), metric: z.literal('randomization'), severity: z.enum(['fail', 'warn']), message: z.string() })),
  deletion: z.strictObject({
    ...curveMetric,
    fill: z.strictObject({ source: z.enum(['dataset', 'samples', 'value']), input: z.array(z.number()), pixel: z.number().optional(), images: z.number().int().optional() }),
  }).optional(),
  insertion: z.strictObject({ ...curveMetric, sigma: z.number() }).optional(),
  randomization: z.strictObject({
    note: z.string().optional(),
    seed: z.number(),
    threshold: z.number(),
    layers: z.array(z.string()),
    steps: z.array(z.strictObject({ step: z.number().int(), layer: z.string(), randomized: z.number().int() })),
    methods: z.array(z.strictObject({
      method: z.string(),
      abs: z.array(nullableNumber),
      signed: z.array(nullableNumber),
      final: nullableNumber,
      flagged: z.boolean(),
      insensitiveUpTo: z.number().int(),
      samples: z.array(z.strictObject({ id: z.string(), abs: z.array(nullableNumber), signed: z.array(nullableNumber) })),
    })),
    skipped: z.array(z.strictObject({ method: z.string(), passes: z.number() })).optional(),
  }).optional(),
  pointingGame: z.strictObject({
    tolerance: z.number(),
    boxes: z.array(z.strictObject({ id: z.string(), box: z.tuple([z.number(), z.number(), z.number(), z.number()]) })),
    methods: z.array(z.strictObject({
      method: z.string(),
      hits: z.number().int(),
      total: z.number().int(),
      accuracy: nullableNumber,
      samples: z.array(z.strictObject({ id: z.string(), class: z.number().int(), hit: z.boolean(), point: z.tuple([z.number(), z.number()]) })),
    })),
  }).optional(),
});
export type MetricsFile = z.infer<typeof MetricsFile>;

/** Compile-time check that the writer's type and the schema describe the same file (both ways). */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const METRICS_FILE_MATCHES_WRITER: Same<MetricsFile, MetricsJson> = true;

// ---- which file is which ----------------------------------------------------------------------

/**
 * The schema of each data file, by the writing method and the file's name (`<dir>/<name>.json`,
 * as `ArtifactSink.data(dir, name, ...)` writes it).
 */
const DATA_FILES: { method: string; name: string; schema: z.ZodType }[] = [
  { method: 'dataset-predictions', name: 'predictions', schema: DatasetPredictionsFile },
  { method: 'embedding', name: 'points', schema: EmbeddingFile },
  { method: 'top-patches', name: 'patches', schema: TopPatchesFile },
  { method: 'model-summary', name: 'summary', schema: ModelSummaryFile },
  { method: 'metrics', name: 'metrics', schema: MetricsFile },
];

/** The schema of a data artifact's file; undefined for a file no schema covers. */
export function dataFileSchema(artifact: Pick<Artifact, 'method' | 'path'>): z.ZodType | undefined {
  const name = artifact.path.slice(artifact.path.lastIndexOf('/') + 1).replace(/\.json$/, '');
  return DATA_FILES.find((f) => f.method === artifact.method && f.name === name)?.schema;
}

/** Wrong fields listed in a parse error at most; the rest are counted. */
const SHOWN_ISSUES = 8;

/**
 * Parses a data file's JSON. A file of another shape throws a ConvlensError whose first line says
 * what to do, then one line per wrong field, `<where>: <field path>: <problem>`.
 */
export function parseDataFile<S extends z.ZodType>(schema: S, value: unknown, where: string): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const hint = 'Re-run the pipeline for this release (convlens report) with this version of convlens; a file edited by hand must keep the fields of pipeline/data-files.ts.';
  const issues = r.error.issues.map((i) => `${where}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  const more = issues.length - SHOWN_ISSUES;
  const lines = [
    `${where} does not have the shape this version of convlens reads (re-run the pipeline for this release):`,
    ...issues.slice(0, SHOWN_ISSUES),
    ...(more > 0 ? [`... and ${more} more`] : []),
  ];
  throw new ConvlensError(lines.join('\n'), { hint });
}
