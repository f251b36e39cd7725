import type { Preprocessing } from './preprocess.ts';

/**
 * Object bounding boxes (for the pointing game): parsed from a list's `box` column or field, in
 * the original image's pixels, and mapped to the model input as the resize moves the pixels.
 */

/** [x0, y0, x1, y1], x0 < x1 and y0 < y1, in continuous pixel coordinates. */
export type Box = [number, number, number, number];

export const BOX_HINT = 'A box is x0,y0,x1,y1 in the original image\'s pixels (left, top, right, bottom; x0 < x1, y0 < y1): in CSV one quoted cell "x0,y0,x1,y1" in a box column (or four columns x0,y0,x1,y1), in JSON "box": [x0, y0, x1, y1].';

/**
 * A box as written: four numbers (a string split at commas, semicolons or spaces, or an array),
 * x0 < x1, y0 < y1, none negative. Empty / null / undefined: no box. Throws a message on error.
 */
export function parseBox(value: unknown): Box | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const parts = typeof value === 'string' ? value.trim().replace(/^[[(]|[\])]$/g, '').split(/[\s,;]+/).filter(Boolean) : value;
  if (!Array.isArray(parts)) throw new Error(`box must be four numbers x0,y0,x1,y1, got ${JSON.stringify(value)}`);
  const nums = parts.map((p) => (typeof p === 'number' ? p : typeof p === 'string' && p.trim() !== '' ? Number(p) : NaN));
  if (nums.length !== 4 || nums.some((v) => !Number.isFinite(v))) throw new Error(`box must be four numbers x0,y0,x1,y1, got ${JSON.stringify(value)}`);
  const [x0, y0, x1, y1] = nums;
  if (x0 < 0 || y0 < 0) throw new Error(`box ${JSON.stringify(value)} has a negative corner`);
  if (!(x1 > x0) || !(y1 > y0)) throw new Error(`box ${JSON.stringify(value)} is empty: it needs x0 < x1 and y0 < y1`);
  return [x0, y0, x1, y1];
}

/**
 * A box in the original image's pixels mapped to the model input [H, W], as the resize in
 * `preprocessImage` moves the pixels (sharp/libvips geometry: the scaled size is rounded, the
 * centred offset floored), then clipped to the input:
 *  - fill:    x' = x * W / w,  y' = y * H / h;
 *  - contain: s = min(W / w, H / h), scaled size (round(w s), round(h s)), placed at
 *             (floor((W - sw) / 2), floor((H - sh) / 2));
 *  - cover:   s = max(W / w, H / h), same scaled size, the centre crop starting at
 *             (floor((sw - W) / 2), floor((sh - H) / 2)).
 * Undefined when nothing of the box is left inside the input (cropped away by cover).
 */
export function boxToInput(box: Box, original: { width: number; height: number }, pre: Pick<Preprocessing, 'size' | 'resize'>): Box | undefined {
  const [H, W] = pre.size;
  const { width: w, height: h } = original;
  let sx: number, sy: number, ox = 0, oy = 0;
  if (pre.resize === 'fill') {
    sx = W / w;
    sy = H / h;
  } else {
    const s = pre.resize === 'contain' ? Math.min(W / w, H / h) : Math.max(W / w, H / h);
    const sw = Math.max(1, Math.round(w * s));
    const sh = Math.max(1, Math.round(h * s));
    sx = sw / w;
    sy = sh / h;
    if (pre.resize === 'contain') {
      ox = Math.floor((W - sw) / 2);
      oy = Math.floor((H - sh) / 2);
    } else {
      ox = -Math.floor((sw - W) / 2);
      oy = -Math.floor((sh - H) / 2);
    }
  }
  const clip = (v: number, hi: number) => Math.min(hi, Math.max(0, v));
  const out: Box = [clip(box[0] * sx + ox, W), clip(box[1] * sy + oy, H), clip(box[2] * sx + ox, W), clip(box[3] * sy + oy, H)];
  return out[2] > out[0] && out[3] > out[1] ? out : undefined;
}
