import sharp from 'sharp';
import { z } from 'zod';
import { forwardPass } from '../compute/dataset-pass.ts';
import type { WorkerPool } from '../compute/worker-pool.ts';
import { type ImageRef, loadImages } from '../data.ts';
import type { TopPatchChannel, TopPatchesFile, TopPatchRow } from '../data-files.ts';
import { ConvlensError } from '../errors.ts';
import type { LayerInfo, LayerRole, ModelAdapter } from '../model/adapter.ts';
import { type Box, receptiveField, type ReceptiveField } from '../receptive-field.ts';
import { slug } from '../release-writer.ts';
import { tileGrid } from '../render.ts';
import { type DatasetAccess, defineMethod, layerProblem, type MethodContext, type OptionProblem } from './types.ts';

/**
 * Maximally activating dataset patches (Zeiler & Fergus 2014, fig. 2; Girshick et al. 2014,
 * fig. 4). For a layer with activation A [n, h, w, C] over the dataset and a channel c, the k
 * units (i, y, x) with the largest A[i, y, x, c], each shown as the receptive field of (y, x)
 * cut from image i (pipeline/receptive-field.ts: the exact box, clipped at every layer's
 * borders, placed in the full receptive field with the part outside the image in gray).
 * Convention (Zeiler & Fergus): with `onePerImage` (default) each image takes part with its
 * strongest unit only, so the k patches come from k different images rather than from k
 * neighbouring units of one image; without it every unit competes.
 * Order: value descending, ties by image index, then row, then column; NaN never ranks.
 * The dataset is streamed once, every selected layer from the same forward pass, into one
 * bounded min-heap of k entries per layer and channel (memory independent of the dataset size);
 * the winning images are decoded again afterwards. Raw data per grid: [k, 4] float32 rows
 * [imageIndex, y, x, value]; per layer, a JSON table with the image sources and boxes.
 */
export const topPatches = defineMethod({
  id: 'top-patches',
  title: 'Top activating patches',
  paper: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks; Girshick et al. 2014, Rich feature hierarchies for accurate object detection and semantic segmentation',
  needs: { dataset: true, spatialLayer: true },
  options: z.strictObject({
    enabled: z.boolean().default(true),
    layers: z.array(z.string().min(1)).min(1).optional()
      .describe('Spatial layers to show (default: one in the middle of the network and the last spatial layer)'),
    channels: z.union([z.literal('all'), z.number().int().positive(), z.array(z.number().int().nonnegative()).min(1)]).default(16)
      .describe('Channels per layer: a count (spread evenly over the channels), "all", or a list of indices'),
    maxChannels: z.number().int().positive().default(256).describe('At most this many channels per layer (spread evenly over the chosen ones)'),
    k: z.number().int().min(1).max(100).default(9).describe('Patches per channel'),
    onePerImage: z.boolean().default(true).describe('Each image contributes at most its strongest location per channel'),
    tileSize: z.number().int().min(8).max(512).optional()
      .describe('Longest side of a patch in the grid, in pixels (default: the receptive field size, enlarged to at least 64 or reduced to at most 128)'),
    batchSize: z.number().int().positive().optional().describe('Images per forward pass (default: compute.batchSize)'),
  }),
  check(opts, model) {
    const problems: OptionProblem[] = [];
    for (const name of opts.layers ?? []) {
      const p = layerProblem(model, 'layers', name);
      problems.push(...p);
      if (p.length) continue;
      const rfProblem = spatialProblem(model, name);
      if (rfProblem) {
        problems.push({ key: 'layers', message: rfProblem });
        continue;
      }
      const C = channelCount(model.layer(name));
      const bad = Array.isArray(opts.channels) ? opts.channels.filter((c) => c >= C) : [];
      if (bad.length) problems.push({ key: 'channels', message: `channel${bad.length > 1 ? 's' : ''} ${bad.join(', ')} out of range for layer "${name}" (${C} channels, 0-${C - 1})` });
    }
    return problems;
  },
  async run(ctx, opts) {
    if (!ctx.dataset || ctx.dataset.refs.length === 0) {
      ctx.logger.warn('top-patches: no dataset images; skipped');
      return;
    }
    const plans: LayerPlan[] = [];
    for (const name of [...new Set(opts.layers ?? defaultLayers(ctx.model))]) {
      let rf: ReceptiveField;
      try {
        rf = receptiveField(ctx.model, name);
      } catch (err) {
        if (opts.layers || !(err instanceof ConvlensError)) throw err;
        ctx.logger.warn(`top-patches: skipping layer ${name}: ${err.message}`);
        continue;
      }
      const C = channelCount(ctx.model.layer(name));
      const { channels, dropped } = pickChannels(opts.channels, C, opts.maxChannels);
      const outside = Array.isArray(opts.channels) ? opts.channels.filter((c) => c >= C) : [];
      if (outside.length) ctx.logger.warn(`top-patches: ${name} has ${C} channels; leaving out ${outside.join(', ')}`);
      if (channels.length === 0) continue;
      if (dropped > 0) ctx.logger.warn(`top-patches: ${name}: showing ${channels.length} channels spread over the ${channels.length + dropped} chosen (maxChannels: ${opts.maxChannels})`);
      if (rf.broadcast.length) {
        ctx.logger.warn(`top-patches: ${name} also depends on ${rf.broadcast.join(', ')}, broadcast over the whole map; patches show the receptive field of the convolutional paths only`);
      }
      plans.push({ layer: name, channels, rf });
    }
    if (plans.length === 0) return;
    const t0 = performance.now();
    const bar = ctx.logger.progress(`top-patches (${plans.length} layer${plans.length === 1 ? '' : 's'})`, ctx.dataset.refs.length);
    const heaps = await streamTopActivations(ctx.model, ctx.dataset, plans, { k: opts.k, batchSize: opts.batchSize ?? ctx.settings.batchSize, onePerImage: opts.onePerImage, onBatch: (n) => bar.tick(n) }, ctx.pool);
    bar.done();
    ctx.logger.debug(`top-patches: ${ctx.dataset.refs.length} images through ${plans.map((p) => p.layer).join(', ')} in ${Math.round(performance.now() - t0)} ms`);
    for (const [i, plan] of plans.entries()) {
      await writeLayer(ctx, plan, heaps[i].map((h) => h.sorted()), opts);
    }
  },
});

export interface LayerPlan {
  layer: string;
  channels: number[];
  rf?: ReceptiveField;
}

export interface Hit {
  /** Index into the dataset refs. */
  image: number;
  y: number;
  x: number;
  value: number;
}

/** a ranks before b: larger value, then smaller image index, row, column. */
export function ranksBefore(a: Hit, b: Hit): boolean {
  if (a.value !== b.value) return a.value > b.value;
  if (a.image !== b.image) return a.image < b.image;
  if (a.y !== b.y) return a.y < b.y;
  return a.x < b.x;
}

/** The k best hits seen so far, as a min-heap on `ranksBefore` (the root is the weakest kept). */
export class TopK {
  private readonly heap: Hit[] = [];

  constructor(readonly k: number) {}

  get size(): number {
    return this.heap.length;
  }

  /** Offers a hit; false when it does not rank among the k best. */
  offer(image: number, y: number, x: number, value: number): boolean {
    if (!(value === value)) return false;
    const h = this.heap;
    if (h.length < this.k) {
      h.push({ image, y, x, value });
      this.up(h.length - 1);
      return true;
    }
    const root = h[0];
    if (value < root.value || (value === root.value && !ranksBefore({ image, y, x, value }, root))) return false;
    h[0] = { image, y, x, value };
    this.down(0);
    return true;
  }

  /** Best first. */
  sorted(): Hit[] {
    return [...this.heap].sort((a, b) => (ranksBefore(a, b) ? -1 : ranksBefore(b, a) ? 1 : 0));
  }

  private up(i: number) {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!ranksBefore(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }

  private down(i: number) {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && ranksBefore(h[m], h[l])) m = l;
      if (r < h.length && ranksBefore(h[m], h[r])) m = r;
      if (m === i) return;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
  }
}

/**
 * Streams the dataset once; for every plan (layer + channels) returns one TopK per channel, in
 * the plan's channel order. All layers come from one forward pass per batch.
 */
export async function streamTopActivations(
  model: Pick<ModelAdapter, 'forward' | 'layer' | 'head'>,
  dataset: DatasetAccess,
  plans: readonly LayerPlan[],
  opts: { k: number; batchSize: number; onePerImage: boolean; onBatch?: (images: number) => void },
  pool?: WorkerPool,
): Promise<TopK[][]> {
  const heaps = plans.map((p) => p.channels.map(() => new TopK(opts.k)));
  const names = plans.map((p) => p.layer);
  for await (const batch of forwardPass({ model, dataset, pool }, names, opts.batchSize)) {
    plans.forEach((plan, li) => {
      const { data: v, shape } = batch.activations[li];
      const [b, h, w, C] = shape;
      plan.channels.forEach((ch, q) => {
        const heap = heaps[li][q];
        for (let i = 0; i < b; i++) {
          const image = batch.start + i;
          if (opts.onePerImage) {
            let best = NaN;
            let at = -1;
            for (let p = 0; p < h * w; p++) {
              const a = v[(i * h * w + p) * C + ch];
              if (a > best || (at < 0 && a === a)) { best = a; at = p; }
            }
            if (at >= 0) heap.offer(image, Math.floor(at / w), at % w, best);
          } else {
            for (let p = 0; p < h * w; p++) heap.offer(image, Math.floor(p / w), p % w, v[(i * h * w + p) * C + ch]);
          }
        }
      });
    });
    opts.onBatch?.(batch.refs.length);
  }
  return heaps;
}

const channelCount = (l: LayerInfo) => l.outputShape.at(-1) ?? 0;

function isSpatial(l: LayerInfo): boolean {
  const s = l.outputShape;
  return s.length === 4 && (s[1] ?? 0) > 1 && (s[2] ?? 0) > 1;
}

function spatialProblem(model: ModelAdapter, name: string): string | undefined {
  const l = model.layer(name);
  if (!isSpatial(l)) return `layer "${name}" has output shape [${l.outputShape.map((d) => d ?? 'null').join(', ')}]; top patches need a spatial layer [batch, height, width, channels]`;
  try {
    receptiveField(model, name);
  } catch (err) {
    if (err instanceof ConvlensError) return err.message;
    throw err;
  }
  return undefined;
}

const OUTPUT_ROLES: ReadonlySet<LayerRole> = new Set(['activation', 'average-pooling', 'max-pooling', 'merge']);

/**
 * The last spatial layer and one in the middle: the first layer at or after the middle of the
 * spatial layers before it that is an activation, pooling or merge output (else the middle one).
 */
export function defaultLayers(model: ModelAdapter): string[] {
  const last = model.lastSpatialLayer();
  const spatial = model.layers.filter(isSpatial);
  const before = spatial.slice(0, spatial.findIndex((l) => l.name === last.name));
  if (before.length === 0) return [last.name];
  const mid = Math.floor(before.length / 2);
  const middle = before.slice(mid).find((l) => OUTPUT_ROLES.has(l.role)) ?? before[mid];
  return [middle.name, last.name];
}

/** n indices spread evenly over `from` (all of it when n >= its length). */
function spread<T>(from: readonly T[], n: number): T[] {
  if (n >= from.length) return [...from];
  return Array.from({ length: n }, (_, i) => from[Math.floor((i * from.length) / n)]);
}

export function pickChannels(spec: 'all' | number | number[], C: number, max: number): { channels: number[]; dropped: number } {
  const all = Array.from({ length: C }, (_, i) => i);
  const chosen = spec === 'all' ? all : typeof spec === 'number' ? spread(all, spec) : [...new Set(spec)].filter((c) => c < C);
  const channels = spread(chosen, max);
  return { channels, dropped: chosen.length - channels.length };
}

/** The field's canvas (the full receptive field) with the exact box cut from the image; gray elsewhere. */
export function patchCanvas(display: Uint8Array, imageWidth: number, box: Box, full: Box): Uint8Array {
  const canvas = new Uint8Array(full.width * full.height * 3).fill(GRAY);
  for (let r = 0; r < box.height; r++) {
    const src = ((box.top + r) * imageWidth + box.left) * 3;
    const dst = ((box.top - full.top + r) * full.width + (box.left - full.left)) * 3;
    canvas.set(display.subarray(src, src + box.width * 3), dst);
  }
  return canvas;
}

const GRAY = 128;
/** Images decoded at once while drawing (a group of channels shares them). */
const IMAGES_PER_GROUP = 128;

type Opts = z.infer<typeof topPatches.options>;

async function writeLayer(ctx: MethodContext, plan: LayerPlan, hits: Hit[][], opts: Opts): Promise<void> {
  const { layer } = plan;
  const rf = plan.rf ?? receptiveField(ctx.model, layer);
  const refs = ctx.dataset!.refs;
  const W = ctx.preprocessing.size[1];
  const [mapH, mapW] = rf.mapSize;
  const C = channelCount(ctx.model.layer(layer));
  const dir = `top-patches/${slug(layer)}`;
  const canvasH = Math.max(1, ...hits.flat().map((h) => rf.full(h.y, h.x).height));
  const canvasW = Math.max(1, ...hits.flat().map((h) => rf.full(h.y, h.x).width));
  const side = Math.max(canvasH, canvasW);
  const f = opts.tileSize ? opts.tileSize / side : side < 64 ? Math.ceil(64 / side) : Math.min(1, 128 / side);
  const tileW = Math.max(1, Math.round(canvasW * f));
  const tileH = Math.max(1, Math.round(canvasH * f));
  const [ay, ax] = rf.affine;
  const rfStats = {
    rfHeight: ay?.size ?? canvasH, rfWidth: ax?.size ?? canvasW,
    ...(ay ? { jumpY: ay.jump } : {}), ...(ax ? { jumpX: ax.jump } : {}),
  };
  const table: TopPatchChannel[] = [];
  for (const group of groupByImages(hits, IMAGES_PER_GROUP)) {
    const images = [...new Set(group.flatMap((q) => hits[q].map((h) => h.image)))];
    const loaded = await loadImages(images.map((i) => refs[i]), ctx.preprocessing);
    const display = new Map(images.map((i, j) => [i, loaded.display[j]]));
    for (const q of group) {
      const c = plan.channels[q];
      const list = hits[q];
      const tiles: Uint8Array[] = [];
      const rows: TopPatchRow[] = [];
      for (const [rank, h] of list.entries()) {
        const box = rf.box(h.y, h.x);
        const full = rf.full(h.y, h.x);
        tiles.push(await resizeTile(patchCanvas(display.get(h.image)!, W, box, full), full.width, full.height, tileW, tileH, f));
        rows.push({ rank: rank + 1, imageIndex: h.image, ...refFields(refs[h.image]), y: h.y, x: h.x, value: h.value, box, rf: full });
      }
      const raw = new Float32Array(list.length * 4);
      list.forEach((h, i) => raw.set([h.image, h.y, h.x, h.value], i * 4));
      const grid = tileGrid(tiles, tileW, tileH, 3, { columns: Math.ceil(Math.sqrt(opts.k)), gap: 2, background: 255 });
      const id = `top-patches/${layer}/${c}`;
      const values = list.map((h) => h.value);
      await ctx.out.image(dir, `channel-${c}`, {
        id,
        method: 'top-patches',
        layer,
        title: `Top ${list.length} dataset patches for channel ${c} of ${layer}`,
        alt: `Grid of the ${list.length} receptive fields (${rfStats.rfHeight}x${rfStats.rfWidth} input pixels) from the dataset that most activate channel ${c} of layer ${layer}, strongest first, row by row; gray is the part of a field outside the image`,
        stats: {
          channel: c, patches: list.length, ...(values.length ? { maxValue: values[0], minValue: values[values.length - 1] } : {}),
          ...rfStats, mapHeight: mapH, mapWidth: mapW, datasetImages: refs.length,
        },
      }, { ...grid, channels: 3 }, { data: raw, shape: [list.length, 4] });
      table[q] = { channel: c, grid: id, patches: rows };
    }
  }
  await ctx.out.data(dir, 'patches', {
    id: `top-patches/${layer}/patches`,
    method: 'top-patches',
    layer,
    title: `Top dataset patches of ${layer}: images, locations, values and boxes`,
    stats: { channels: plan.channels.length, k: opts.k, datasetImages: refs.length, ...rfStats },
  }, {
    layer,
    k: opts.k,
    onePerImage: opts.onePerImage,
    datasetImages: refs.length,
    featureMap: { height: mapH, width: mapW, channels: C },
    receptiveField: { rows: ay, columns: ax },
    broadcastInputs: rf.broadcast,
    boxes: 'box: the exact input pixels that can reach the unit (clipped); rf: the full receptive field, which may extend beyond the image; both {top, left, height, width} in model-input pixels',
    channels: table,
  } satisfies TopPatchesFile);
}

function refFields(ref: ImageRef): Pick<TopPatchRow, 'id' | 'source' | 'label' | 'labelName'> {
  return { id: ref.id, source: ref.source, ...(ref.label !== undefined ? { label: ref.label } : {}), ...(ref.labelName !== undefined ? { labelName: ref.labelName } : {}) };
}

/** Channels grouped in order so that each group needs at most `max` distinct images (at least one channel each). */
function groupByImages(hits: Hit[][], max: number): number[][] {
  const groups: number[][] = [];
  let cur: number[] = [];
  let seen = new Set<number>();
  hits.forEach((list, q) => {
    const next = new Set([...seen, ...list.map((h) => h.image)]);
    if (cur.length > 0 && next.size > max) {
      groups.push(cur);
      cur = [];
      seen = new Set(list.map((h) => h.image));
    } else seen = next;
    cur.push(q);
  });
  if (cur.length) groups.push(cur);
  return groups;
}

/** Enlarges with nearest neighbour (pixels stay visible) or reduces with lanczos3; aspect kept, gray margins. */
async function resizeTile(canvas: Uint8Array, w: number, h: number, tileW: number, tileH: number, f: number): Promise<Uint8Array> {
  if (w === tileW && h === tileH) return canvas;
  const buf = await sharp(Buffer.from(canvas.buffer, canvas.byteOffset, canvas.byteLength), { raw: { width: w, height: h, channels: 3 } })
    .resize(tileW, tileH, { fit: 'contain', background: { r: GRAY, g: GRAY, b: GRAY }, kernel: f >= 1 ? 'nearest' : 'lanczos3' })
    .raw()
    .toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
