import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initBackend } from './backend.ts';
import { ConfigError, type LoadedConfig, loadConfig, resolveFromConfig } from './config.ts';
import { BAD_IMAGE_HINT, batches, findBadImages, listImages, publishedModelSource, loadImages, readLabelsFile, resolvePreprocessing, type ImageRef, type Preprocessing } from './data.ts';
import { ConvlensError, fileSystemError } from './errors.ts';
import type { Logger } from './logger.ts';
import { type Manifest, type Prediction, SCHEMA_VERSION, type Sample } from './manifest.ts';
import { METHOD_IDS, METHODS } from './methods/registry.ts';
import { unmetNeed } from './methods/needs.ts';
import { metricsProblems } from './metrics/options.ts';
import { runMetrics } from './metrics/run-metrics.ts';
import type { DatasetAccess, MethodContext, MethodDef, SampleItem } from './methods/types.ts';
import type { ModelAdapter } from './model/adapter.ts';
import { classNamesFor, defaultTarget, describeHead } from './model/head.ts';
import { formatBytes, modelFootprint, parseBytes, planMemory } from './compute/memory.ts';
import { WorkerPool } from './compute/worker-pool.ts';
import { runMethodTask, type MethodTask } from './compute/method-task.ts';
import { shareWork } from './compute/share.ts';
import { loadModel } from './model/load.ts';
import { encodeImage } from './render.ts';
import { lockOutput, type OutputLock } from './lock.ts';
import { recoverSwaps } from './fs-atomic.ts';
import { onInterrupt } from './interrupt.ts';
import { ReleaseWriter, replay, sweepStaging } from './release-writer.ts';
import { renderSummaries } from './summary.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function toolVersion(): Promise<string> {
  return (JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

export interface ReportOptions {
  configFile: string;
  /** Overrides `release` in the config (CLI --release, env CONVLENS_RELEASE). */
  release?: string;
  /** Overrides `site.base` (CLI --base, env CONVLENS_BASE). */
  base?: string;
  /** Build the site after the release (default true). */
  site?: boolean;
  /** When another run holds the output folder, wait for it instead of failing (CLI --wait). */
  wait?: boolean;
  logger: Logger;
}

export interface ReportResult {
  releaseDir: string;
  manifest: Manifest;
  siteDir?: string;
}

interface Prepared {
  loaded: LoadedConfig;
  model: ModelAdapter;
  source: string;
  format: Manifest['model']['format'];
  weightsSha256: string;
  /** model.path resolved against the config file (the workers load it again). */
  modelPath: string;
  classes: string[];
  methods: { def: MethodDef; opts: Record<string, unknown> }[];
  /** Enabled methods that cannot run with this config and model, and why. */
  skipped: { id: string; title: string; reason: string }[];
  backend: Awaited<ReturnType<typeof initBackend>>;
  release: string;
  pre: Preprocessing;
  sampleRefs: ImageRef[];
  /** The dataset images that decode (data.onBadImage: skip leaves the others out). */
  datasetRefs: ImageRef[];
  /** Dataset images left out because they cannot be decoded, as the user named them. */
  badImages: { source: string; reason: string }[];
}

/** The config, the compute backend and the model, loaded (what `convlens layers` needs). */
export async function loadForReport(configFile: string, logger: Logger) {
  const loaded = await loadConfig(configFile);
  const { config } = loaded;
  const label = basename(loaded.file);
  const backend = await initBackend(config.compute.backend, logger);
  const modelPath = resolveFromConfig(loaded, config.model.path);
  let model: ModelAdapter;
  let format: Manifest['model']['format'];
  let weightsSha256: string;
  try {
    ({ adapter: model, format, weightsSha256 } = await loadModel(modelPath));
  } catch (err) {
    if (err instanceof ConvlensError) throw new ConvlensError(`${label}: model.path: ${err.message}`, { hint: err.hint, cause: err });
    throw err;
  }
  return { loaded, label, backend, modelPath, model, format, weightsSha256 };
}

/**
 * Problems found while checking, collected so that one run reports them all: each is a line
 * naming the config file and key, with its hint.
 */
class Problems {
  readonly lines: string[] = [];
  private readonly hints: string[] = [];
  constructor(private readonly label: string) {}

  add(key: string, message: string, hint?: string): void {
    this.lines.push(message.startsWith(`${this.label}: `) ? message : `${this.label}: ${key}: ${message}`);
    if (hint && !this.hints.includes(hint)) this.hints.push(hint);
  }

  /** fn's value, or undefined with its problems recorded when it throws a ConvlensError. */
  async attempt<T>(key: string, fn: () => T | Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ConvlensError)) throw err;
      if (err instanceof ConfigError) for (const line of err.problems) this.add(key, line);
      else this.add(key, err.message, err.hint);
      return undefined;
    }
  }

  throwIfAny(): void {
    if (this.lines.length === 0) return;
    throw new ConvlensError(this.lines.join('\n'), { hint: this.hints.join('\n  ') || `Fix ${this.label} and run again.` });
  }
}

/**
 * Everything that can be checked before work starts, in one pass, so one run names every problem:
 * the config, the model, the labels, the release name, what each method needs, the method and
 * metrics options, the preprocessing, and the listing of the sample and dataset images.
 */
export async function prepare(configFile: string, logger: Logger, opts: { release?: string } = {}): Promise<Prepared> {
  const loaded = await loadConfig(configFile);
  const { config } = loaded;
  const label = basename(loaded.file);
  const backend = await initBackend(config.compute.backend, logger);
  const problems = new Problems(label);
  const release = opts.release ?? config.release;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(release)) {
    problems.add('release', `release name "${release}" is not usable as a folder name`, 'Use letters, digits, ".", "_" and "-" only in the release name.');
  }
  const modelPath = resolveFromConfig(loaded, config.model.path);
  const loadedModel = await problems.attempt('model.path', () => loadModel(modelPath));
  const labels = config.model.labels ? await problems.attempt('model.labels', () => readLabelsFile(resolveFromConfig(loaded, config.model.labels!), 'model.labels', label)) : undefined;
  const model = loadedModel?.adapter;
  let classes: string[] | undefined = labels;
  if (model && (labels || !config.model.labels)) {
    const named = classNamesFor(model.head, labels);
    if (Array.isArray(named)) classes = named;
    else problems.add('model.labels', named.problem);
  }
  const enabled = (METHODS as readonly MethodDef[])
    .map((def) => ({ def, opts: (config.methods as Record<string, Record<string, unknown>>)[def.id] }))
    .filter((m) => m.opts.enabled !== false);
  // what a method needs and this config or model lacks: skipped before any work, with the reason
  const skipped = model ? enabled.flatMap(({ def }) => {
    const reason = def.needs.dataset && !config.data.dataset ? `${label} has no data.dataset` : unmetNeed(def, model);
    return reason ? [{ id: def.id, title: def.title, reason }] : [];
  }) : [];
  const methods = enabled.filter((m) => !skipped.some((s) => s.id === m.def.id));
  if (model) {
    for (const { def, opts: mopts } of methods) {
      for (const p of def.check?.(mopts, model, classes) ?? []) problems.add(`methods.${def.id}.${p.key}`, p.message);
    }
  }
  for (const p of metricsProblems(config.metrics, METHOD_IDS)) problems.add(p.path, p.message);
  const pre = model ? await problems.attempt('input', () => resolvePreprocessing(config.input, { height: model.inputShape[0], width: model.inputShape[1], channels: model.inputShape[2] }, label)) : undefined;
  const listCtx = (key: 'data.samples' | 'data.dataset') => ({ config: loaded, key, classNames: classes, logger });
  const sampleRefs = await problems.attempt('data.samples', () => listImages(config.data.samples, listCtx('data.samples')));
  let datasetRefs = config.data.dataset ? await problems.attempt('data.dataset', () => listImages(config.data.dataset!, listCtx('data.dataset'))) : [];
  // every image decoded once, as the run will: a sample that fails stops the run; a dataset image
  // is left out (data.onBadImage: skip) or stops it (fail)
  const badImages: Prepared['badImages'] = [];
  if (pre && sampleRefs) {
    for (const bad of await findBadImages(sampleRefs, pre)) {
      problems.add('data.samples', `${bad.ref.origin ? `${bad.ref.origin}: ` : ''}cannot read image "${bad.ref.source}" (${bad.ref.path}): ${bad.reason}`, BAD_IMAGE_HINT);
    }
  }
  if (pre && datasetRefs?.length) {
    const bar = logger.progress('check dataset images', datasetRefs.length);
    const bad = await findBadImages(datasetRefs, pre, { onDone: () => bar.tick() });
    bar.done();
    const where = (b: (typeof bad)[number]) => `${b.ref.origin ? `${b.ref.origin}: ` : `${label}: data.dataset: `}`;
    if (config.data.onBadImage === 'fail') {
      for (const b of bad) problems.add('data.dataset', `${where(b)}cannot read image "${b.ref.source}" (${b.ref.path}): ${b.reason}`, `${BAD_IMAGE_HINT} Or set data.onBadImage: skip in ${label} to leave such images out.`);
    } else if (bad.length) {
      for (const b of bad) logger.warn(`${where(b)}skipped image "${b.ref.source}" (${b.ref.path}): ${b.reason}`);
      logger.warn(`${label}: data.dataset: ${bad.length} of ${datasetRefs.length} dataset images cannot be decoded and are left out (data.onBadImage: skip); the release counts them. Replace or remove them, or set data.onBadImage: fail to stop on such images.`);
      const skip = new Set(bad.map((b) => b.ref));
      datasetRefs = datasetRefs.filter((r) => !skip.has(r));
      badImages.push(...bad.map((b) => ({ source: b.ref.source, reason: b.reason })));
    }
  }
  if (problems.lines.length) {
    model?.dispose();
    problems.throwIfAny();
  }
  const dupes = [...new Set(classes!.filter((c, i) => classes!.indexOf(c) !== i))];
  if (dupes.length) {
    logger.warn(`${label}: model.labels: ${dupes.length} class name${dupes.length === 1 ? '' : 's'} appear more than once (${dupes.slice(0, 5).map((d) => JSON.stringify(d)).join(', ')}${dupes.length > 5 ? ', ...' : ''}); a folder or label with such a name means the first of them, and the site cannot tell them apart. Make the names unique, or use class indices.`);
  }
  for (const reason of new Set(skipped.map((x) => x.reason))) {
    const ids = skipped.filter((x) => x.reason === reason).map((x) => x.id);
    logger.warn(`${ids.join(', ')} skipped: ${reason} (set methods.<id>.enabled: false in ${label} to silence this)`);
  }
  return {
    loaded, release, model: model!, source: publishedModelSource(config.model.path, loaded.dir), format: loadedModel!.format, weightsSha256: loadedModel!.weightsSha256, modelPath,
    classes: classes!, methods, skipped, backend, pre: pre!, sampleRefs: sampleRefs!, datasetRefs: datasetRefs!, badImages,
  };
}

/**
 * The whole report: check everything, compute every enabled method for the samples, write the
 * release atomically (staging folder, manifest last), then build the site from the manifest.
 */
export async function runReport(opts: ReportOptions): Promise<ReportResult> {
  const { logger } = opts;
  const timings: Manifest['timings'] = [];
  const timed = async <T>(stage: string, fn: () => Promise<T>, count?: number): Promise<T> => {
    const t0 = performance.now();
    const r = await fn();
    timings.push({ stage, ms: Math.round(performance.now() - t0), ...(count === undefined ? {} : { count }) });
    return r;
  };
  const prep = await timed('load', () => prepare(opts.configFile, logger, { release: opts.release }));
  const { loaded, model, classes, methods, release, pre, sampleRefs, datasetRefs } = prep;
  const { config } = loaded;
  logger.info(`model: ${config.model.name ?? defaultModelName(prep.source)}, ${model.format}, ${model.layers.length} layers, ${model.countParams().toLocaleString('en-US')} parameters, input ${model.inputShape.join('x')}, ${classes.length} classes`);
  logger.info(`head: ${describeHead(model.head, classes)}`);

  logger.info(`data: ${sampleRefs.length} samples, ${datasetRefs.length} dataset images${prep.badImages.length ? ` (${prep.badImages.length} left out: cannot be decoded)` : ''}`);

  const outputDir = resolveFromConfig(loaded, config.output.dir);
  const writer = new ReleaseWriter(join(outputDir, 'releases'), release, config.output.imageFormat);
  const outputKey = `${basename(loaded.file)}: output.dir`;
  let lock: OutputLock;
  try {
    lock = await lockOutput(outputDir, { wait: opts.wait, logger, configKey: outputKey });
    await sweepOutput(outputDir, logger);
    await writer.open();
  } catch (err) {
    model.dispose();
    await lock!?.release().catch(() => undefined);
    throw fileSystemError(err, 'creating the release folder in', outputKey) ?? err;
  }
  // on SIGINT / SIGTERM: no staging folder and no lock left behind
  const undo = onInterrupt(() => { writer.abortSync(); lock.releaseSync(); });
  let input: tf.Tensor4D | undefined;
  try {
    const batch = await timed('decode samples', () => loadImages(sampleRefs, pre), sampleRefs.length);
    input = tf.tensor4d(batch.input, batch.shape);
    const probs = await timed('predict samples', async () => {
      const p = predictInBatches(model, input!, config.compute.batchSize);
      const values = (await p.array()) as number[][];
      p.dispose();
      return values;
    }, sampleRefs.length);
    const samples: Sample[] = [];
    const items: SampleItem[] = [];
    for (let i = 0; i < sampleRefs.length; i++) {
      const ref = sampleRefs[i];
      const predictions = topK(probs[i], classes, 5);
      const [h, w] = pre.size;
      const path = await writer.file(`samples/${ref.id}.png`, await encodeImage(batch.display[i], w, h, 3, 'png'));
      samples.push({ id: ref.id, source: ref.source, path, predictions, ...(ref.label === undefined ? {} : { label: ref.label, labelName: classes[ref.label] }) });
      items.push({ index: i, id: ref.id, source: ref.source, label: ref.label, display: batch.display[i], target: defaultTarget(model.head, probs[i]) });
    }

    const ctx = {
      model,
      classes,
      input,
      samples: items,
      preprocessing: pre,
      dataset: config.data.dataset ? datasetAccess(datasetRefs, pre, config.compute.batchSize) : undefined,
      out: writer,
      logger,
      settings: { colormap: config.output.colormap, batchSize: config.compute.batchSize, channelOrder: config.input.channelOrder, seed: config.compute.seed },
    };
    // wasm and cpu run one thread per tfjs instance; libtensorflow (tfjs-node) already uses every core
    const oneThread = prep.backend.name === 'wasm' || prep.backend.name === 'cpu';
    const fixedWorkers = config.compute.workers !== 'auto';
    const plan = planMemory({
      budget: parseBytes(config.compute.memory),
      footprint: modelFootprint(model.layers, model.inputShape, model.countParams()),
      wantedWorkers: !oneThread ? 0 : fixedWorkers ? config.compute.workers as number : WorkerPool.defaultSize(),
      fixedWorkers,
      batchSize: config.compute.batchSize,
    });
    const limits = { forward: plan.forwardBatch, backward: plan.backwardBatch };
    model.limitBatches(limits);
    logger.info(`memory: budget ${config.compute.memory}: ${plan.workers} worker${plan.workers === 1 ? '' : 's'}, forward passes of up to ${plan.forwardBatch} images, backward passes of ${plan.backwardBatch} (about ${formatBytes(plan.estimatedPeak)} at peak)`);
    if (plan.overBudget) {
      logger.warn(`${basename(loaded.file)}: compute.memory: ${config.compute.memory} is less than ${plan.overBudget}; running with the smallest batches, which may still exceed it. Raise compute.memory${fixedWorkers && plan.workers > 0 ? ' or lower compute.workers' : ''}.`);
    }
    const pool = await WorkerPool.start({ modelPath: prep.modelPath, backend: prep.backend.name, limits }, plan.workers, logger, fixedWorkers);
    try {
      for (const { def, opts: mopts } of methods) {
        const before = writer.artifacts.length;
        const t0 = performance.now();
        const tensorsBefore = tf.memory().numTensors;
        if (def.perSample) await runPerSample(def, mopts, { ...ctx, pool });
        else await def.run({ ...ctx, pool }, mopts);
        const leaked = tf.memory().numTensors - tensorsBefore;
        if (leaked > 0) logger.debug(`${def.id}: ${leaked} tensors not released`);
        const made = writer.artifacts.length - before;
        logger.info(`${def.id}: ${made} artifact${made === 1 ? '' : 's'} in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
        timings.push({ stage: def.id, ms: Math.round(performance.now() - t0), count: made });
      }
      await timed('metrics', () => runMetrics({ ...ctx, pool }, { methods, refs: sampleRefs }, config.metrics));
    } finally {
      await pool?.close();
    }
    const hasMetrics = writer.artifacts.some((a) => a.method === 'metrics');

    const manifest: Manifest = {
      schemaVersion: SCHEMA_VERSION,
      release,
      createdAt: new Date().toISOString(),
      tool: { name: 'convlens', version: await toolVersion() },
      configHash: loaded.hash,
      backend: { name: prep.backend.name, tfjsBackend: prep.backend.tfjsBackend, tfjsVersion: prep.backend.tfjsVersion },
      model: {
        name: config.model.name ?? defaultModelName(prep.source),
        source: prep.source,
        format: prep.format,
        inputShape: model.inputShape,
        classes,
        head: { ...model.head, description: describeHead(model.head, classes) },
        params: model.countParams(),
        weightsSha256: prep.weightsSha256,
        layers: model.layers.map((l) => ({ name: l.name, type: l.type, outputShape: l.outputShape, params: l.params, inputs: l.inputs })),
      },
      methods: [
        ...methods.map(({ def }) => ({ id: def.id, title: def.title, ...(def.paper ? { paper: def.paper } : {}) })),
        ...(hasMetrics ? [{ id: 'metrics', title: 'Trust metrics' }] : []),
      ],
      ...(prep.skipped.length ? { skipped: prep.skipped } : {}),
      render: { colormap: config.output.colormap, imageFormat: config.output.imageFormat },
      samples,
      dataset: { count: datasetRefs.length, ...(prep.badImages.length ? { skipped: prep.badImages } : {}) },
      artifacts: writer.artifacts,
      timings,
    };
    const accuracy = writer.artifacts.find((a) => a.method === 'dataset-predictions')?.stats;
    const summaries = await timed('summary', () => renderSummaries(manifest, writer.staging, {
      accuracy: typeof accuracy?.accuracy === 'number' ? accuracy.accuracy : undefined,
      labelled: typeof accuracy?.labelled === 'number' ? accuracy.labelled : undefined,
    }));
    manifest.summary = {
      markdown: await writer.file('summary.md', new TextEncoder().encode(summaries.markdown)),
      html: await writer.file('summary.html', new TextEncoder().encode(summaries.html)),
    };
    const releaseDir = await writer.commit(manifest);
    logger.info(`release: ${releaseDir} (${writer.artifacts.length} artifacts)`);
    let siteDir: string | undefined;
    if (opts.site !== false) {
      const { buildSite } = await import('./site.ts');
      const t0 = performance.now();
      siteDir = (await buildSite({ outputDir, release, base: opts.base ?? config.site.base, logger })).siteDir;
      timings.push({ stage: 'site', ms: Math.round(performance.now() - t0) });
    }
    return { releaseDir, manifest, siteDir };
  } catch (err) {
    await writer.abort().catch(() => undefined);
    throw fileSystemError(err, 'writing', outputKey) ?? err;
  } finally {
    undo();
    await lock.release().catch(() => undefined);
    input?.dispose();
    model.dispose();
  }
}

/**
 * A per-sample method (MethodDef.perSample), one sample at a time on the worker pool and the main
 * thread together; the artifacts go into the release in sample order, so the release does not
 * depend on the number of workers.
 */
async function runPerSample(def: MethodDef, opts: Record<string, unknown>, ctx: MethodContext & { out: ReleaseWriter }): Promise<void> {
  const [n, h, w, c] = ctx.input.shape;
  const per = h * w * c;
  const all = ctx.input.dataSync() as Float32Array;
  const tasks: MethodTask[] = ctx.samples.map((s, i) => ({
    method: def.id, opts, samples: [s], input: all.slice(i * per, (i + 1) * per), shape: [1, h, w, c],
    classes: ctx.classes, preprocessing: ctx.preprocessing, settings: ctx.settings, imageFormat: ctx.out.imageFormat,
  }));
  const bar = ctx.logger.progress(def.id, n);
  const results = await shareWork(tasks, ctx.pool, (t) => runMethodTask(ctx.model, t), (pool, t) => pool.method(t), () => bar.tick());
  bar.done();
  const said = new Set<string>();
  for (const r of results) {
    // a method's warning is usually about the model, not the sample: say it once
    for (const line of r.logs) if (!said.has(line.msg)) { said.add(line.msg); ctx.logger[line.level](line.msg); }
    await replay(r.ops, ctx.out);
  }
}

/**
 * What killed runs left in the output folder (call while holding its lock): unfinished release
 * staging folders, swaps interrupted between their renames (finished or rolled back), the site
 * build's temp folders and cache.
 */
async function sweepOutput(outputDir: string, logger: Logger): Promise<void> {
  const releasesDir = join(outputDir, 'releases');
  const staged = await sweepStaging(releasesDir);
  if (staged) logger.info(`removed ${staged} unfinished release${staged === 1 ? '' : 's'} left by interrupted runs`);
  for (const name of await recoverSwaps(releasesDir)) logger.warn(`release ${name}: put back the copy an interrupted run had set aside while replacing it`);
  const { sweepSite } = await import('./site.ts');
  for (const line of await sweepSite(outputDir)) logger.debug(`site: ${line} (left by an interrupted run)`);
}

export function datasetAccess(refs: ImageRef[], pre: Preprocessing, defaultBatch: number): DatasetAccess {
  return {
    refs,
    async *batches(batchSize = defaultBatch) {
      let start = 0;
      for await (const b of batches(refs, pre, batchSize)) {
        yield { input: tf.tensor4d(b.input, b.shape), refs: b.refs, display: b.display, start };
        start += b.refs.length;
      }
    },
  };
}

function predictInBatches(model: ModelAdapter, x: tf.Tensor4D, batchSize: number): tf.Tensor2D {
  const n = x.shape[0];
  const parts: tf.Tensor2D[] = [];
  for (let s = 0; s < n; s += batchSize) {
    parts.push(tf.tidy(() => model.probabilities(tf.slice(x, [s, 0, 0, 0], [Math.min(batchSize, n - s), -1, -1, -1]))));
  }
  const all = tf.concat(parts, 0);
  tf.dispose(parts);
  return all;
}

export function topK(probs: readonly number[], classes: readonly string[], k: number): Prediction[] {
  return probs
    .map((p, i) => ({ class: i, name: classes[i], probability: Math.min(1, Math.max(0, p)) }))
    .sort((a, b) => b.probability - a.probability || a.class - b.class)
    .slice(0, Math.min(k, probs.length));
}

function defaultModelName(source: string): string {
  const clean = source.replace(/\/+$/, '');
  const base = basename(clean);
  return base === 'model.json' ? basename(dirname(clean)) : base;
}
