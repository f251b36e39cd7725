import { z } from 'zod';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { BACKEND_CHOICES } from './backend.ts';
import { COLORMAPS } from './render.ts';
import { metricsOptions } from './metrics/options.ts';
import { ConvlensError, nearest } from './errors.ts';
import { METHODS, methodsSchema, methodDefaults } from './methods/registry.ts';

/**
 * Every default of `viz.yaml` in one object. Method defaults come from each method's own
 * declaration in the registry, so adding a method adds its config section here too.
 */
export const DEFAULTS = {
  release: 'latest',
  model: { name: undefined as string | undefined, labels: undefined as string | undefined },
  input: {
    channelOrder: 'rgb' as 'rgb' | 'bgr',
    scale: 1 / 255,
    mean: [0],
    std: [1],
    resize: 'fill' as 'fill' | 'cover' | 'contain',
    exifOrientation: 'ignore' as 'apply' | 'ignore',
  },
  data: { samples: { limit: 16 }, dataset: { limit: 2000 }, onBadImage: 'skip' as 'skip' | 'fail' },
  compute: { backend: 'auto' as (typeof BACKEND_CHOICES)[number], batchSize: 32, workers: 'auto' as 'auto' | number, seed: 0, memory: '2GB' },
  output: { dir: 'output', imageFormat: 'png' as 'png' | 'webp', colormap: 'turbo' as const },
  site: { base: '/' },
  methods: methodDefaults(),
  metrics: metricsOptions.parse({}),
};


const dataSource = (limit: number) =>
  z
    .strictObject({
      folder: z.string().min(1).optional().describe('Folder-per-class images: <folder>/<class>/*.png|jpg|webp'),
      list: z.string().min(1).optional().describe('CSV (path,label) or JSON ([{path,label}]) list; paths relative to the list file'),
      files: z.array(z.union([
        z.string().min(1),
        z.strictObject({
          path: z.string().min(1).describe('The image, relative to this config file'),
          label: z.union([z.string().min(1), z.number().int().nonnegative()]).optional().describe('Class name or index'),
        }),
      ])).min(1).optional()
        .describe('Image files, relative to this config file: a path, or {path, label}; a path inside a folder named like a class (e.g. images/cat/1.png) takes that class as its label'),
      limit: z.number().int().positive().default(limit).describe('At most this many images (taken in a stable order)'),
    })
    .refine((s) => [s.folder, s.list, s.files].filter((v) => v !== undefined).length === 1, {
      message: 'give exactly one of folder, list or files',
    });

export const ConfigSchema = z.strictObject({
  release: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'use letters, digits, ".", "_" and "-" only').default(DEFAULTS.release)
    .describe('Release name: output goes to <output.dir>/releases/<release>/ (CLI --release overrides)'),
  model: z.strictObject({
    path: z.string().min(1).describe('A TensorFlow.js model.json, an ONNX .onnx file, a folder holding one of them, or an http(s) URL'),
    name: z.string().min(1).optional().describe('Display name (default: the folder name)'),
    labels: z.string().min(1).optional().describe('Text file with one class name per line, in output order'),
  }),
  input: z.strictObject({
    size: z.tuple([z.number().int().positive(), z.number().int().positive()]).optional()
      .describe('[height, width] fed to the model (default: the model input size)'),
    channels: z.union([z.literal(1), z.literal(3)]).optional().describe('1 = grayscale, 3 = colour (default: from the model)'),
    channelOrder: z.enum(['rgb', 'bgr']).default(DEFAULTS.input.channelOrder).describe('Channel order the model expects (bgr: Caffe-style models); images are decoded as RGB and flipped for bgr'),
    scale: z.number().positive().default(DEFAULTS.input.scale).describe('Pixel values (0-255) are multiplied by this'),
    mean: z.array(z.number()).min(1).max(3).default(DEFAULTS.input.mean).describe('Subtracted after scaling, per channel or one for all'),
    std: z.array(z.number().positive()).min(1).max(3).default(DEFAULTS.input.std).describe('Divided by after the mean, per channel or one for all'),
    resize: z.enum(['fill', 'cover', 'contain']).default(DEFAULTS.input.resize).describe('fill: stretch; cover: crop to fill; contain: letterbox'),
    exifOrientation: z.enum(['apply', 'ignore']).default(DEFAULTS.input.exifOrientation)
      .describe('ignore: pixels as stored, as tf.io.decode_image, PIL and Keras\' loaders read them (the default: what the model saw in training); apply: rotate photos by their EXIF orientation first'),
  }).prefault({}),
  data: z.strictObject({
    samples: dataSource(DEFAULTS.data.samples.limit).describe('Images explained one by one'),
    dataset: dataSource(DEFAULTS.data.dataset.limit).optional().describe('Images for dataset-wide views'),
    onBadImage: z.enum(['skip', 'fail']).default(DEFAULTS.data.onBadImage)
      .describe('A dataset image that cannot be decoded: skip (the default) leaves it out with a warning naming it, and the release counts it; fail stops the run before any work. A sample that cannot be decoded always stops the run'),
  }),
  compute: z.strictObject({
    backend: z.enum(BACKEND_CHOICES).default(DEFAULTS.compute.backend)
      .describe('auto: tfjs-node-gpu, then tfjs-node, then wasm, then cpu (the first that loads)'),
    batchSize: z.number().int().positive().default(DEFAULTS.compute.batchSize)
      .describe('Images per forward pass; backward passes use micro-batches within the wasm heap'),
    workers: z.union([z.literal('auto'), z.number().int().min(0).max(64)]).default(DEFAULTS.compute.workers)
      .describe('Worker threads on the wasm and cpu backends, each with its own tfjs and copy of the model, beside the main thread: per-sample methods, dataset passes and the metrics\' curves ("auto": one per core, at most 8, as far as compute.memory allows; 0: main thread only). Results do not depend on it'),
    memory: z.string().regex(/^\s*\d+(\.\d+)?\s*(MB|GB)\s*$/i, 'a size such as 2GB or 800MB').default(DEFAULTS.compute.memory)
      .describe('Memory budget of the run (main thread and workers together, e.g. 2GB or 800MB): "auto" workers are started only as far as it allows, and forward and backward passes are cut into batches that fit. A hosted CI runner has about 7GB'),
    seed: z.number().int().nonnegative().max(2 ** 31).default(DEFAULTS.compute.seed)
      .describe('The seed every random draw of a run starts from (SmoothGrad noise, class visualization, embedding, the metrics\' random baselines and re-initialised weights); each of those adds its own seed option'),
  }).prefault({}),
  output: z.strictObject({
    dir: z.string().min(1).default(DEFAULTS.output.dir).describe('Folder for releases/<release>/ and site/ (relative to this file)'),
    imageFormat: z.enum(['png', 'webp']).default(DEFAULTS.output.imageFormat).describe('Format of the pictures in a release'),
    colormap: z.enum(COLORMAPS).default(DEFAULTS.output.colormap).describe('Colour map of the heatmaps (the site shows its legend)'),
  }).prefault({}),
  site: z.strictObject({
    base: z.string().startsWith('/').default(DEFAULTS.site.base).describe('Base path, e.g. /REPO/ for GitHub Pages (env CONVLENS_BASE overrides)'),
  }).prefault({}),
  methods: methodsSchema(),
  metrics: metricsOptions.describe('Trust metrics for the maps: deletion/insertion, randomization, pointing game'),
});

export type Config = z.infer<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the config file; relative paths in it resolve against its folder. */
  file: string;
  dir: string;
  /**
   * sha256 of the validated config without what cannot change the results (configResultKeys),
   * recorded in the manifest: the same for a run into another output folder or release.
   */
  hash: string;
}

/** One readable line per problem: `viz.yaml: methods.grad-cam.layer: no layer "conv9"; nearest: conv5, conv6`. */
export class ConfigError extends ConvlensError {
  readonly problems: string[];
  constructor(fileLabel: string, problems: { path: string; message: string }[]) {
    const lines = problems.map((p) => `${fileLabel}: ${p.path || '(top level)'}: ${p.message}`);
    super(lines.join('\n'), { hint: `Fix ${fileLabel} and run again; ${fileLabel.replace(/\.ya?ml$/, '.schema.json')} gives editors autocompletion.` });
    this.problems = lines;
  }
}

export async function loadConfig(file: string): Promise<LoadedConfig> {
  const abs = resolve(file);
  const label = basename(abs);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    throw new ConvlensError(`cannot read config "${abs}" (${(err as NodeJS.ErrnoException).code ?? String(err)})`, {
      hint: 'Pass an existing file with --config (the default project config is config/viz.yaml).',
    });
  }
  return parseConfigText(text, abs, label);
}

export function parseConfigText(text: string, file: string, label = basename(file)): LoadedConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(label, doc.errors.map((e) => ({
      path: `line ${e.linePos?.[0].line ?? '?'}`,
      message: `YAML syntax error: ${e.message.split('\n')[0]}`,
    })));
  }
  let value: unknown;
  try {
    value = doc.toJS() ?? {};
  } catch (err) {
    // the yaml library refuses aliases that expand past a limit (a "billion laughs" file)
    throw new ConfigError(label, [{ path: '(top level)', message: `YAML aliases expand too much (${(err as Error).message}); write the values out instead of repeating anchors` }]);
  }
  const config = validateConfig(value, label);
  const hash = createHash('sha256').update(canonicalJson(resultRelevant(config))).digest('hex');
  return { config, file, dir: dirname(file), hash };
}

export function validateConfig(value: unknown, label = 'viz.yaml'): Config {
  const r = ConfigSchema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  throw new ConfigError(label, r.error.issues.flatMap((i) => describeIssue(i)));
}

function describeIssue(issue: z.core.$ZodIssue): { path: string; message: string }[] {
  const path = issue.path.map(String).join('.');
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((key) => {
        const known = knownKeys(issue.path);
        const renamed = RENAMED_KEYS[key] && known.includes(RENAMED_KEYS[key]) ? RENAMED_KEYS[key] : undefined;
        if (renamed) return { path: path ? `${path}.${key}` : key, message: `"${key}" is now called "${renamed}"; rename the key` };
        const near = nearest(key, known, 1);
        const suggestion = near.length ? `did you mean "${near[0]}"?` : '';
        return { path: path ? `${path}.${key}` : key, message: `unknown key "${key}"; ${suggestion || 'remove it'}${known.length ? ` (known: ${known.join(', ')})` : ''}` };
      });
    case 'invalid_type': {
      if (issue.input === undefined) return [{ path, message: `missing; ${expectation(issue.expected)} is required` }];
      return [{ path, message: `expected ${expectation(issue.expected)}, got ${describeValue(issue.input)}` }];
    }
    case 'invalid_value':
      return [{ path, message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}; got ${describeValue(issue.input)}` }];
    case 'invalid_union':
      return [{ path, message: `got ${describeValue(issue.input)}, which matches none of the allowed forms` }];
    case 'too_small':
      return [{ path, message: issue.origin === 'array' ? `needs at least ${issue.minimum} item(s)` : issue.origin === 'string' ? 'must not be empty' : `must be ${issue.inclusive === false ? '>' : '>='} ${issue.minimum}` }];
    case 'too_big':
      return [{ path, message: issue.origin === 'array' ? `takes at most ${issue.maximum} item(s)` : `must be ${issue.inclusive === false ? '<' : '<='} ${issue.maximum}` }];
    default:
      return [{ path, message: issue.message }];
  }
}

function expectation(t: string): string {
  if (t === 'object') return 'a mapping (key: value lines)';
  if (t === 'array') return 'a list';
  if (t === 'int') return 'a whole number';
  return /^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Option keys that were renamed, old -> new, for a one-line error that says so: a method's
 * overlay opacity was `alpha`, a word the CAM papers use for channel weights.
 */
const RENAMED_KEYS: Record<string, string> = { alpha: 'opacity' };

/** Keys the schema allows at `path` (for "did you mean"). */
function knownKeys(path: readonly PropertyKey[]): string[] {
  let s: z.core.$ZodType | undefined = ConfigSchema;
  for (const key of [...path]) {
    s = unwrap(s);
    const shape = objectShape(s);
    s = shape?.[String(key)];
  }
  return Object.keys(objectShape(unwrap(s)) ?? {});
}

function unwrap(s: z.core.$ZodType | undefined): z.core.$ZodType | undefined {
  let cur = s;
  for (let i = 0; i < 10 && cur; i++) {
    const def = cur._zod.def as { innerType?: z.core.$ZodType; in?: z.core.$ZodType; schema?: z.core.$ZodType };
    const next = def.innerType ?? def.in ?? def.schema;
    if (!next) break;
    cur = next;
  }
  return cur;
}

function objectShape(s: z.core.$ZodType | undefined): Record<string, z.core.$ZodType> | undefined {
  return (s?._zod.def as { shape?: Record<string, z.core.$ZodType> } | undefined)?.shape;
}

/**
 * The config without the keys that do not change what is computed: where it goes (`output.dir`,
 * `release`, `site`) and how many threads compute it (`compute.workers`; the release is the same
 * for any number).
 */
function resultRelevant(config: Config): unknown {
  return {
    ...config,
    release: undefined,
    site: undefined,
    output: { ...config.output, dir: undefined },
    compute: { ...config.compute, workers: undefined, memory: undefined },
  };
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The JSON Schema editors use to autocomplete viz.yaml. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

/** Resolves a path from the config against the config file's folder (URLs pass through). */
export function resolveFromConfig(loaded: Pick<LoadedConfig, 'dir'>, p: string): string {
  return /^https?:\/\//i.test(p) ? p : resolve(loaded.dir, p);
}

export { METHODS };
