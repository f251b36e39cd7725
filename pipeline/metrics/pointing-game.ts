import sharp from 'sharp';
import { boxToInput, type Box, type ImageRef, type Preprocessing } from '../data.ts';
import type { Logger } from '../logger.ts';
import { r6 } from './evaluation.ts';
import { defineMetric } from './metric.ts';
import type { PointingMetric } from './types.ts';

/**
 * Pointing game (Zhang et al. 2018, "Top-down Neural Attention by Excitation Backprop", sec.
 * 5.1): a map scores a hit when its maximum lies on the object, within a tolerance: TorchRay's
 * rule, a hit when some point of the box is within `tolerance` pixels (Euclidean) of the
 * maximum. The maximum is taken on the map at the input size (bilinear upsampling for maps at a
 * layer's resolution), the first in raster order on ties, at its pixel centre (u + 0.5, v + 0.5).
 * Boxes come from the sample list in the original image's pixels and are mapped to the input by
 * the resize mode (`boxToInput`); the paper's 15 pixels are scaled by min(H, W) / 224.
 * Score per method: hits / samples with a box.
 */

/** Index of the largest value (first on ties; NaN never wins); -1 for an empty or all-NaN map. */
export function argmax(map: ArrayLike<number>): number {
  let best = -1;
  let value = -Infinity;
  for (let i = 0; i < map.length; i++) {
    if (map[i] > value || (best < 0 && map[i] === -Infinity)) { value = map[i]; best = i; }
  }
  return best;
}

/** The map's maximum as a point (pixel centre) in input coordinates [x, y]. */
export function maxPoint(map: ArrayLike<number>, width: number): [number, number] | undefined {
  const i = argmax(map);
  return i < 0 ? undefined : [(i % width) + 0.5, Math.floor(i / width) + 0.5];
}

/** Whether `point` is within `tolerance` (Euclidean) of the box [x0, y0, x1, y1]. */
export function pointingHit(point: readonly [number, number], box: Box, tolerance: number): boolean {
  const [x, y] = point;
  const dx = Math.max(box[0] - x, 0, x - box[2]);
  const dy = Math.max(box[1] - y, 0, y - box[3]);
  return dx * dx + dy * dy <= tolerance * tolerance;
}

/** The tolerance in input pixels: `tolerance` at 224 px, scaled by min(H, W) / 224. */
export function scaledTolerance(tolerance: number, [H, W]: readonly [number, number]): number {
  return (tolerance * Math.min(H, W)) / 224;
}

/**
 * Boxes of the refs that have one, in input pixels (the original size is read from the file
 * header). A box that falls outside the input after the resize is left out with a warning.
 */
export async function inputBoxes(refs: readonly ImageRef[], pre: Pick<Preprocessing, 'size' | 'resize'>, logger: Logger): Promise<Map<string, Box>> {
  const out = new Map<string, Box>();
  for (const ref of refs) {
    if (!ref.box) continue;
    const meta = await sharp(ref.path).metadata();
    if (!meta.width || !meta.height) {
      logger.warn(`metrics: pointing game: cannot read the size of ${ref.source}; its box is ignored`);
      continue;
    }
    if (ref.box[2] > meta.width || ref.box[3] > meta.height) {
      logger.warn(`metrics: pointing game: the box of ${ref.source} [${ref.box.join(', ')}] extends past the image (${meta.width}x${meta.height}); it is clipped`);
    }
    const box = boxToInput(ref.box, { width: meta.width, height: meta.height }, pre);
    if (!box) {
      logger.warn(`metrics: pointing game: the box of ${ref.source} lies outside the model input after the "${pre.resize}" resize; the sample is left out`);
      continue;
    }
    out.set(ref.id, box);
  }
  return out;
}

export const pointingGame = defineMetric({
  id: 'pointing-game',
  title: 'Pointing game',
  paper: 'Zhang et al. 2018, Top-down Neural Attention by Excitation Backprop',
  key: 'pointingGame',
  async run(ev, opts) {
    const { ctx, H, W, sampleIds, sampleRows, allIds } = ev;
    const { logger } = ctx;
    const refs = (ev.input.refs ?? []).filter((r) => r.box && sampleIds.includes(r.id));
    const boxes = refs.length ? await inputBoxes(refs, ctx.preprocessing, logger) : new Map<string, Box>();
    const tolerance = scaledTolerance(opts.tolerance, [H, W]);
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
    } else if (!ev.input.refs?.some((r) => r.box)) {
      logger.debug('metrics: pointing game skipped: no sample has a box (add a box column to the data.samples list)');
    }
    return pointing;
  },
});
