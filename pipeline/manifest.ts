import { z } from 'zod';

/**
 * The only contract between the pipeline and the site: `output/releases/<release>/manifest.json`.
 * The pipeline validates before writing, the site validates on reading, with this one schema.
 * Every path is relative to the release folder and uses forward slashes.
 * Bump SCHEMA_VERSION on any change a reader of an older manifest could misread.
 */
export const SCHEMA_VERSION = 1;

const relPath = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\\'), 'must be a relative path inside the release');

export const Prediction = z.strictObject({
  class: z.number().int().nonnegative(),
  name: z.string(),
  probability: z.number().min(0).max(1),
});
export type Prediction = z.infer<typeof Prediction>;

export const Sample = z.strictObject({
  /** Stable id used in artifact references and page URLs: [a-z0-9-]. */
  id: z.string().regex(/^[a-z0-9][a-z0-9-]*$/),
  /** The file name the user gave (shown, never used as a path). */
  source: z.string(),
  /** The image as the model saw it (resized), in the release. */
  path: relPath,
  label: z.number().int().nonnegative().optional(),
  labelName: z.string().optional(),
  /** Top-5 (or fewer, for fewer classes), best first. */
  predictions: z.array(Prediction).min(1),
});
export type Sample = z.infer<typeof Sample>;

export const RawData = z.strictObject({
  path: relPath,
  format: z.literal('npy'),
  dtype: z.literal('float32'),
  shape: z.array(z.number().int().nonnegative()),
});

export const Artifact = z.strictObject({
  id: z.string().min(1),
  method: z.string().min(1),
  /** image: a picture to show; data: JSON the site reads (tables). */
  kind: z.enum(['image', 'data']),
  path: relPath,
  title: z.string(),
  alt: z.string().optional(),
  layer: z.string().optional(),
  /** Sample id this artifact explains. */
  image: z.string().optional(),
  class: z.number().int().nonnegative().optional(),
  className: z.string().optional(),
  width: z.number().int().positive().optional(),
  height: z.number().int().positive().optional(),
  /** The map before colouring, as float data. */
  raw: RawData.optional(),
  /** Further files the artifact's data refers to (thumbnails of a scatter, patches, ...). */
  files: z.array(relPath).optional(),
  /** Method-specific numbers worth showing (e.g. value ranges). */
  stats: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).optional(),
});
export type Artifact = z.infer<typeof Artifact>;

export const LayerSummary = z.strictObject({
  name: z.string(),
  type: z.string(),
  outputShape: z.array(z.number().int().nullable()),
  params: z.number().int().nonnegative(),
  inputs: z.array(z.string()),
});
export type LayerSummary = z.infer<typeof LayerSummary>;

export const Manifest = z.strictObject({
  schemaVersion: z.literal(SCHEMA_VERSION),
  release: z.string().min(1),
  createdAt: z.iso.datetime(),
  tool: z.strictObject({ name: z.literal('convlens'), version: z.string() }),
  configHash: z.string().regex(/^[0-9a-f]{64}$/),
  backend: z.strictObject({ name: z.string(), tfjsBackend: z.string(), tfjsVersion: z.string() }),
  model: z.strictObject({
    name: z.string(),
    source: z.string(),
    format: z.enum(['layers-model', 'graph-model', 'onnx']),
    inputShape: z.tuple([z.number().int().positive(), z.number().int().positive(), z.number().int().positive()]),
    classes: z.array(z.string()).min(1),
    /** What the output means (model/head.ts); absent in older releases. */
    head: z.strictObject({
      kind: z.enum(['softmax', 'logits', 'binary', 'multi-label']),
      activation: z.enum(['softmax', 'sigmoid', 'none']),
      units: z.number().int().positive(),
      description: z.string(),
    }).optional(),
    params: z.number().int().nonnegative(),
    /** SHA-256 of the weight specs and bytes (model/io.ts weightsHash); absent in older releases. */
    weightsSha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    layers: z.array(LayerSummary),
  }),
  methods: z.array(z.strictObject({ id: z.string(), title: z.string(), paper: z.string().optional() })),
  /** Enabled methods that could not run with this config and model, and why (absent: none). */
  skipped: z.array(z.strictObject({ id: z.string(), title: z.string(), reason: z.string() })).optional(),
  /** How heatmaps were drawn: the site shows this colour map's legend (low to high). */
  render: z.strictObject({ colormap: z.string(), imageFormat: z.enum(['png', 'webp']) }),
  samples: z.array(Sample),
  /**
   * The dataset images used (`count`) and those left out because they could not be decoded
   * (data.onBadImage: skip), as the config named them, with the decoder's reason.
   */
  dataset: z.strictObject({
    count: z.number().int().nonnegative(),
    skipped: z.array(z.strictObject({ source: z.string(), reason: z.string() })).optional(),
  }),
  artifacts: z.array(Artifact),
  /** Review-document renderings of this manifest: Markdown with relative links, self-contained HTML. */
  summary: z.strictObject({ markdown: relPath, html: relPath }).optional(),
  timings: z.array(z.strictObject({ stage: z.string(), ms: z.number().nonnegative(), count: z.number().int().nonnegative().optional() })),
});
export type Manifest = z.infer<typeof Manifest>;

/** Parses a manifest, throwing one readable line per problem. */
export function parseManifest(value: unknown, where = 'manifest.json'): Manifest {
  const r = Manifest.safeParse(value);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `${where}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  throw new Error(lines.join('\n'));
}
