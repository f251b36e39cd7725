import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { z } from 'zod';
import type { Box, ImageRef } from '../data.ts';
import type { Artifact } from '../manifest.ts';
import { gaussianBlur } from '../methods/integrated-gradients.ts';
import { methodPasses, type MethodContext, type MethodDef } from '../methods/types.ts';
import type { ReleaseWriter } from '../release-writer.ts';
import { decodeNpy } from '../npy.ts';
import { upsampleBilinear } from '../render.ts';
import { curvesSvg, rasterize, type ChartPanel } from './chart.ts';
import { constantImage, datasetChannelMean, noiseMap, perturbationCount, perturbationCurvesPooled, rankPixels, stepFractions, trapezoidAuc, type CurveSpec } from './curves.ts';
import { metricsOptions, type MetricsOptions } from './options.ts';
import { inputBoxes, maxPoint, pointingHit, scaledTolerance } from './pointing-game.ts';
import { randomizationTest, type EvaluatedMethod } from './randomization.ts';
import { markBest } from './table.ts';
import { type CurveMetric, type DeletionMetric, type InsertionMetric, type MetricsFlag, type MetricsJson, type MetricsRow, type PointingMetric } from './types.ts';

/**
 * The metrics stage: after the methods ran and before the manifest is written, it reads every
 * evaluated method's per-sample maps back from the release being written (the `raw` .npy of
 * their heatmap artifacts) and scores them: deletion and insertion (curves.ts), the cascading
 * model-parameter randomization test (randomization.ts), the pointing game where samples have
 * boxes (pointing-game.ts), each next to a random baseline. Writes `metrics/metrics.json`
 * (types.ts) and the curve pictures.
 * Random baselines are matched to each map's grid: for a map computed on an h x w grid (Grad-CAM:
 * its layer; occlusion: its stride cells; gradient methods: the input pixels) the baseline is
 * seeded uniform noise on h x w, upsampled to the input as the maps are (one baseline row per
 * distinct grid; sample i uses seed + i). Deletion and insertion score the shape of the removed
 * region as well as its order: scattered single pixels filled with the mean are far out of the
 * training distribution and destroy a prediction faster than any contiguous region (measured on
 * Darknet Tiny, 12 photos, 16 steps: per-pixel noise 0.027 mean deletion AUC, the same noise on
 * Grad-CAM's 14x14 grid 0.068, Grad-CAM 0.028, Grad-CAM's reverse order 0.20; cf. Rong et al.
 * 2022, "A Consistent and Efficient Evaluation Strategy for Attribution Methods", on removal
 * masks leaking information). Against per-pixel noise a coarse map is judged on its grid, not
 * on its ranking; the matched baseline asks only whether the ranking beats chance.
 * Which maps: heatmap artifacts (id `<method>/<sample>/<class>/heatmap`) with a 2-D raw map and a
 * class; with `methods: all`, maps with a variant (contrastive Grad-CAM's "vs-B") are left out,
 * since they explain a contrast rather than the class's probability; a method named in the
 * list is evaluated on its first map per sample. The class followed is the map's class.
 */

export interface MetricsInput {
  /** The methods that ran, with their options: the randomization test runs them again. */
  methods?: readonly { def: MethodDef; opts: Record<string, unknown> }[];
  /** The sample refs (their `box`, in original pixels, feeds the pointing game). */
  refs?: readonly ImageRef[];
}

interface SampleMap {
  artifact: Artifact;
  class: number;
  /** As saved, [h, w]. */
  raw: Float32Array;
  /** At the input size [H, W] (bilinear upsampling when h, w differ). */
  map: Float32Array;
}

const r6 = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(6)) : v);

/** Maps of the methods to evaluate, by method (first-seen order) then sample id. */
export function selectMapArtifacts(artifacts: readonly Artifact[], sampleIds: readonly string[], methods: MetricsOptions['methods']): Map<string, Map<string, Artifact>> {
  const ids = new Set(sampleIds);
  const out = new Map<string, Map<string, Artifact>>();
  const listed = methods === 'all' ? undefined : new Set(methods);
  for (const a of artifacts) {
    if (a.kind !== 'image' || !a.raw || a.raw.shape.length !== 2 || a.image === undefined || !ids.has(a.image) || a.class === undefined) continue;
    if (!a.id.endsWith('/heatmap') || a.method === 'metrics') continue;
    if (listed ? !listed.has(a.method) : a.id !== `${a.method}/${a.image}/${a.class}/heatmap`) continue;
    const byId = out.get(a.method) ?? new Map<string, Artifact>();
    out.set(a.method, byId);
    if (!byId.has(a.image)) byId.set(a.image, a);
  }
  return out;
}

/** The metrics read the maps back from the release being written, so `out` is the release itself. */
export type MetricsContext = MethodContext & { out: ReleaseWriter };

export async function runMetrics(ctx: MetricsContext, input: MetricsInput, options: MetricsOptions | z.input<typeof metricsOptions> = {}): Promise<MetricsJson | undefined> {
  const opts = metricsOptions.parse(options);
  const { logger } = ctx;
  if (!opts.enabled) return undefined;
  const [N, H, W, C] = ctx.input.shape;
  const P = H * W;
  const sampleIds = ctx.samples.map((s) => s.id);
  const chosen = selectMapArtifacts(ctx.out.artifacts, sampleIds, opts.methods);
  if (opts.methods !== 'all') {
    const missing = opts.methods.filter((m) => !chosen.has(m));
    if (missing.length) logger.warn(`metrics.methods: ${missing.join(', ')} wrote no per-sample class heatmaps in this run; left out`);
  }
  if (chosen.size === 0 || N === 0) {
    logger.info('metrics: no per-sample maps to evaluate; skipped');
    return undefined;
  }
  const defs = new Map((input.methods ?? []).map((m) => [m.def.id, m]));
  const titleOf = (id: string) => defs.get(id)?.def.title ?? id;

  // ---- the maps, read back from the release being written ----
  const maps = new Map<string, Map<string, SampleMap>>();
  for (const [method, bySample] of chosen) {
    const got = new Map<string, SampleMap>();
    for (const [sample, artifact] of bySample) {
      const { data, shape } = decodeNpy(new Uint8Array(await readFile(join(ctx.out.staging, artifact.raw!.path))));
      got.set(sample, { artifact, class: artifact.class!, raw: data, map: toInputSize(data, shape, H, W) });
    }
    maps.set(method, got);
  }
  const methodIds = [...maps.keys()];
  // ---- random baselines, one per map grid ----
  const gridOfMethod = new Map(methodIds.map((m) => [m, mapGrid(maps.get(m)!.values().next().value!.artifact, [H, W])]));
  const baselines = new Map<string, { grid: [number, number]; maps: Float32Array[] }>();
  for (const grid of gridOfMethod.values()) {
    const id = baselineId(grid, [H, W]);
    if (!baselines.has(id)) {
      baselines.set(id, { grid, maps: ctx.samples.map((_, i) => toInputSize(noiseMap(grid[0] * grid[1], ctx.settings.seed + opts.baselineSeed + i), grid, H, W)) });
    }
  }
  const againstOf = (m: string) => baselineId(gridOfMethod.get(m)!, [H, W]);
  /** Per sample, every row's map (methods in order, then the baselines), with its class. */
  const sampleRows = ctx.samples.map((sample, i) => [
    ...methodIds.flatMap((m) => {
      const s = maps.get(m)!.get(sampleIds[i]);
      return s ? [{ method: m, class: s.class, map: s.map }] : [];
    }),
    ...[...baselines].map(([id, b]) => ({ method: id, class: sample.target, map: b.maps[i] })),
  ]);
  const allIds = [...methodIds, ...baselines.keys()];
  const ranked = new Map<string, Uint32Array>();
  const orderOf = (i: number, method: string, map: Float32Array) => {
    const key = `${i}\u0000${method}`;
    if (!ranked.has(key)) ranked.set(key, rankPixels(map));
    return ranked.get(key)!;
  };

  const images = (await ctx.input.data()) as Float32Array;
  const sampleImage = ctx.samples.map((_, i) => images.subarray(i * P * C, (i + 1) * P * C));
  const json: MetricsJson = {
    version: 1,
    samples: ctx.samples.map((s) => ({ id: s.id, source: s.source })),
    methods: [
      ...methodIds.map((id) => ({ id, title: titleOf(id), against: againstOf(id) })),
      ...[...baselines].map(([id, b]) => ({ id, title: baselineTitle(b.grid, [H, W]), baseline: true, grid: b.grid })),
    ],
    table: [],
    flags: [],
  };

  const curveMetric = async (label: 'deletion' | 'insertion', steps: number, pps: number | undefined, start: (i: number) => Float32Array, end: (i: number) => Float32Array): Promise<CurveMetric> => {
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
  };

  // ---- deletion ----
  if (opts.deletion.enabled) {
    const fill = await deletionFill(ctx, opts.deletion.fill, images);
    const fillImage = constantImage(P, fill.input);
    json.deletion = { ...await curveMetric('deletion', opts.deletion.steps, opts.deletion.pixelsPerStep, (i) => sampleImage[i], () => fillImage), fill } satisfies DeletionMetric;
  }

  // ---- insertion ----
  if (opts.insertion.enabled) {
    const blurredTensor = gaussianBlur(ctx.input, opts.insertion.sigma);
    const blurred = (await blurredTensor.data()) as Float32Array;
    blurredTensor.dispose();
    const blurredImage = ctx.samples.map((_, i) => blurred.subarray(i * P * C, (i + 1) * P * C));
    json.insertion = { ...await curveMetric('insertion', opts.insertion.steps, opts.insertion.pixelsPerStep, (i) => blurredImage[i], (i) => sampleImage[i]), sigma: opts.insertion.sigma } satisfies InsertionMetric;
  }

  // ---- pointing game ----
  if (opts.pointingGame.enabled) {
    const refs = (input.refs ?? []).filter((r) => r.box && sampleIds.includes(r.id));
    const boxes = refs.length ? await inputBoxes(refs, ctx.preprocessing, logger) : new Map<string, Box>();
    const tolerance = scaledTolerance(opts.pointingGame.tolerance, [H, W]);
    const pointing: PointingMetric = { tolerance: r6(tolerance), boxes: sampleIds.filter((id) => boxes.has(id)).map((id) => ({ id, box: boxes.get(id)!.map(r6) as Box })), methods: [] };
    if (boxes.size > 0) {
      pointing.methods = allIds.map((method) => {
        const samples = ctx.samples.flatMap((s, i) => {
          const box = boxes.get(s.id);
          const row = sampleRows[i].find((r) => r.method === method);
          const point = row && maxPoint(row.map, W);
          return box && row && point ? [{ id: s.id, class: row.class, hit: pointingHit(point, box, tolerance), point }] : [];
        });
        const hits = samples.filter((s) => s.hit).length;
        return { method, hits, total: samples.length, accuracy: samples.length ? r6(hits / samples.length) : null, samples };
      });
    } else if (!input.refs?.some((r) => r.box)) {
      logger.debug('metrics: pointing game skipped: no sample has a box (add a box column to the data.samples list)');
    }
    json.pointingGame = pointing;
  }

  // ---- randomization ----
  if (opts.randomization.enabled) {
    const costOf = (id: string) => {
      const d = defs.get(id);
      return d ? methodPasses(d.def, d.opts, [H, W]) : 1;
    };
    const costly = opts.randomization.methods ? [] : methodIds.filter((id) => costOf(id) > opts.randomization.maxPasses);
    const wanted = opts.randomization.methods ?? methodIds.filter((id) => !costly.includes(id));
    if (costly.length) {
      logger.info(`metrics: randomization test leaves out ${costly.map((id) => `${id} (${costOf(id)} passes per sample)`).join(', ')}: above metrics.randomization.maxPasses = ${opts.randomization.maxPasses}; list them in metrics.randomization.methods to test them`);
    }
    const evaluated: EvaluatedMethod[] = [];
    for (const id of wanted) {
      const d = defs.get(id);
      const m = maps.get(id);
      if (!m) { logger.warn(`metrics.randomization.methods: ${id} has no evaluated maps in this run; left out`); continue; }
      if (!d) { logger.info(`metrics: randomization: ${id} cannot be rerun here (its definition was not passed); left out`); continue; }
      evaluated.push({ def: d.def, opts: d.opts, maps: new Map([...m].map(([sid, s]) => [sid, { artifactId: s.artifact.id, raw: s.raw }])) });
    }
    const t0 = performance.now();
    json.randomization = await randomizationTest(ctx, evaluated, opts.randomization, logger);
    if (costly.length) json.randomization.skipped = costly.map((id) => ({ method: id, passes: costOf(id) }));
    if (json.randomization.steps.length) logger.info(`metrics: randomization test in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
    const { steps } = json.randomization;
    const L = steps.at(-1)?.randomized ?? 0;
    for (const m of json.randomization.methods) {
      const t = opts.randomization.threshold;
      let flag: MetricsFlag | undefined;
      if (m.flagged) {
        flag = {
          method: m.method, metric: 'randomization', severity: 'fail',
          message: `its maps barely change when the model's weights are randomized: the mean Spearman correlation of |map| with the original is ${m.final!.toFixed(2)} after re-initialising all ${L} weighted layers (threshold ${t}). Such maps may show the input's structure rather than what the model learned (Adebayo et al. 2018 found this for guided backpropagation and Guided Grad-CAM).`,
        };
        logger.warn(`metrics: ${titleOf(m.method)} fails the randomization sanity check: ${flag.message}`);
      } else if (m.insensitiveUpTo > 0 && m.insensitiveUpTo >= L / 2) {
        const k = steps.findIndex((s) => s.randomized === m.insensitiveUpTo);
        flag = {
          method: m.method, metric: 'randomization', severity: 'warn',
          message: `its maps barely change while the top ${m.insensitiveUpTo} of ${L} weighted layers are randomized (mean Spearman correlation of |map| ${m.abs[k]!.toFixed(2)} with everything down to ${steps[k].layer} re-initialised, threshold ${t}); they only decorrelate (${m.final === null ? '—' : m.final.toFixed(2)}) once the lowest layers are randomized too. They depend little on what the higher layers learned (Adebayo et al. 2018 report this for guided backpropagation).`,
        };
        logger.warn(`metrics: ${titleOf(m.method)} is insensitive to the higher layers in the randomization test: ${flag.message}`);
      }
      if (flag) json.flags.push(flag);
    }
  }

  // ---- table ----
  const meanAuc = (c: CurveMetric | undefined, id: string) => c?.mean.find((m) => m.method === id)?.auc ?? null;
  const beats = (c: CurveMetric | undefined, id: string, against: string, lower: boolean) => {
    const a = meanAuc(c, id);
    const b = meanAuc(c, against);
    return a === null || b === null ? null : lower ? a < b : a > b;
  };
  json.table = markBest(json.methods.map((m): MetricsRow => {
    const rnd = json.randomization?.methods.find((x) => x.method === m.id);
    return {
      method: m.id,
      title: m.title,
      baseline: m.baseline === true,
      deletion: meanAuc(json.deletion, m.id),
      insertion: meanAuc(json.insertion, m.id),
      randomization: rnd?.final ?? null,
      pointing: json.pointingGame?.methods.find((x) => x.method === m.id)?.accuracy ?? null,
      flagged: rnd?.flagged ?? false,
      warned: json.flags.some((f) => f.method === m.id && f.severity === 'warn'),
      best: [],
      ...(m.against ? { against: m.against, beats: { deletion: beats(json.deletion, m.id, m.against, true), insertion: beats(json.insertion, m.id, m.against, false) } } : {}),
    };
  }));

  // ---- artifacts ----
  await ctx.out.data('metrics', 'metrics', {
    id: 'metrics/metrics',
    method: 'metrics',
    title: 'Trust metrics: deletion, insertion, randomization test, pointing game',
    stats: { samples: N, methods: methodIds.length, flagged: json.flags.length },
  }, json);
  if (opts.curves && (json.deletion || json.insertion)) await writeCurveImages(ctx, json, titleOf);
  return json;
}

/**
 * The grid a map was computed on: the stats gridHeight / gridWidth that writeSampleMaps records
 * (occlusion: its stride cells), else the raw map's shape.
 */
function mapGrid(a: Artifact, [H, W]: [number, number]): [number, number] {
  const gh = a.stats?.gridHeight;
  const gw = a.stats?.gridWidth;
  if (typeof gh === 'number' && typeof gw === 'number' && gh >= 1 && gw >= 1) return [Math.min(H, Math.round(gh)), Math.min(W, Math.round(gw))];
  const [h, w] = a.raw!.shape;
  return [h, w];
}

/** `random` for per-pixel noise, `random-<rows>x<cols>` for a coarser grid. */
export function baselineId(grid: readonly number[], [H, W]: readonly number[]): string {
  return grid[0] === H && grid[1] === W ? 'random' : `random-${grid[0]}x${grid[1]}`;
}

function baselineTitle(grid: readonly number[], [H, W]: readonly number[]): string {
  return grid[0] === H && grid[1] === W ? 'Random (per pixel)' : `Random (${grid[0]}×${grid[1]} grid)`;
}

/** [h, w] raw values at the input size [H, W] (bilinear, half-pixel centres, as render.ts). */
function toInputSize(raw: Float32Array, shape: number[], H: number, W: number): Float32Array {
  const [h, w] = shape;
  if (h === H && w === W) return raw;
  return tf.tidy(() => upsampleBilinear(tf.tensor4d(raw, [1, h, w, 1]), H, W).dataSync() as Float32Array);
}

/** The deletion fill in input space: the dataset's (or samples') per-channel mean, or a pixel value. */
async function deletionFill(ctx: MetricsContext, fill: MetricsOptions['deletion']['fill'], images: Float32Array): Promise<DeletionMetric['fill']> {
  const C = ctx.input.shape[3];
  if (typeof fill === 'number') {
    const { scale, mean, std } = ctx.preprocessing;
    const pick = (v: readonly number[], c: number) => (v.length === 1 ? v[0] : v[c]);
    return { source: 'value', pixel: fill, input: Array.from({ length: C }, (_, c) => r6((fill * scale - pick(mean, c)) / pick(std, c))) };
  }
  if (ctx.dataset && ctx.dataset.refs.length > 0) {
    const got = await datasetChannelMean(ctx.dataset, ctx.settings.batchSize);
    if (got) return { source: 'dataset', input: got.mean.map(r6), images: got.images };
  }
  ctx.logger.info('metrics: deletion fills removed pixels with the samples\' mean colour (no data.dataset to take the mean over)');
  const sum = new Float64Array(C);
  for (let i = 0; i < images.length; i++) sum[i % C] += images[i];
  const count = images.length / C;
  return { source: 'samples', input: Array.from(sum, (v) => r6(v / count)), images: ctx.samples.length };
}

async function writeCurveImages(ctx: MetricsContext, json: MetricsJson, titleOf: (id: string) => string): Promise<void> {
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
