import * as tf from '@tensorflow/tfjs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRef } from '../data.ts';
import type { Artifact } from '../manifest.ts';
import type { MethodContext, MethodDef } from '../methods/types.ts';
import type { ReleaseWriter } from '../release-writer.ts';
import { decodeNpy } from '../npy.ts';
import { upsampleBilinear } from '../render.ts';
import { noiseMap, rankPixels } from './curves.ts';
import type { MetricsOptions } from './options.ts';
import type { MetricsFlag, MetricsMethod } from './types.ts';

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

export interface SampleMap {
  artifact: Artifact;
  class: number;
  /** As saved, [h, w]. */
  raw: Float32Array;
  /** At the input size [H, W] (bilinear upsampling when h, w differ). */
  map: Float32Array;
}

/** Rounds to 6 significant digits, as every number in metrics.json. */
export const r6 = (v: number) => (Number.isFinite(v) ? Number(v.toPrecision(6)) : v);

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

/** One map scored by the metrics: a method's, or a random baseline's (`method` is its id). */
export interface EvaluatedRow {
  method: string;
  class: number;
  /** At the input size, H*W. */
  map: Float32Array;
}

/** What every metric reads: the maps read back, the baselines, the images, in one place. */
export interface Evaluation {
  ctx: MetricsContext;
  input: MetricsInput;
  /** Input size and channels; P = H * W pixels. */
  H: number;
  W: number;
  C: number;
  P: number;
  sampleIds: string[];
  /** The evaluated methods' maps, by method (first-seen order) then sample id. */
  maps: Map<string, Map<string, SampleMap>>;
  /** The evaluated methods, in order; `allIds` adds the baselines after them. */
  methodIds: string[];
  allIds: string[];
  /** metrics.json's `methods`: the evaluated methods, then the baselines. */
  methods: MetricsMethod[];
  /** The methods that ran, by id, with their options (the randomization test reruns them). */
  defs: Map<string, { def: MethodDef; opts: Record<string, unknown> }>;
  titleOf(id: string): string;
  /** Per sample, every row's map: the methods in order, then the baselines. */
  sampleRows: EvaluatedRow[][];
  /** Pixel indices of a row's map, most important first (computed once per sample and row). */
  orderOf(sample: number, method: string, map: Float32Array): Uint32Array;
  /** The samples' model inputs, NHWC, and each sample's H*W*C slice of it. */
  images: Float32Array;
  sampleImage: Float32Array[];
  /** metrics.json's `flags`, filled by the metrics that raise them. */
  flags: MetricsFlag[];
}

/**
 * Reads the maps to evaluate back from the release being written and makes the random
 * baselines; undefined (with a log line) when there is nothing to evaluate.
 */
export async function evaluate(ctx: MetricsContext, input: MetricsInput, opts: MetricsOptions): Promise<Evaluation | undefined> {
  const { logger } = ctx;
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
  const sampleRows: EvaluatedRow[][] = ctx.samples.map((sample, i) => [
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
  const methods: MetricsMethod[] = [
    ...methodIds.map((id) => ({ id, title: titleOf(id), against: againstOf(id) })),
    ...[...baselines].map(([id, b]) => ({ id, title: baselineTitle(b.grid, [H, W]), baseline: true, grid: b.grid })),
  ];
  return { ctx, input, H, W, C, P, sampleIds, maps, methodIds, allIds, methods, defs, titleOf, sampleRows, orderOf, images, sampleImage, flags: [] };
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
