import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { colormapRgb, type Colormap } from './colormap.ts';

/**
 * The shared image steps every method uses: normalise a map, upsample it to the input,
 * colour-map it, blend it over the image, and encode. Maps are row-major [h, w] Float32Arrays;
 * images are interleaved 8-bit RGB [h, w, 3].
 */

export { COLORMAPS, colormapRgb, type Colormap } from './colormap.ts';

/** [min, max] of the values, by a loop (spreading a large kernel into Math.min overflows the stack). */
export function valueRange(values: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Min-max to [0, 1] (a constant map becomes all zeros), as pytorch-grad-cam's scale_cam_image. */
export function normalizeMinMax(map: ArrayLike<number>): Float32Array {
  const [lo, hi] = valueRange(map);
  const out = new Float32Array(map.length);
  const span = hi - lo;
  if (!(span > 0)) return out;
  for (let i = 0; i < map.length; i++) out[i] = (map[i] - lo) / span;
  return out;
}

/**
 * How a heatmap picture turns a map's values into [0, 1] before colouring (the raw .npy keeps the
 * values as computed):
 *  - 'min-max': (v - min) / (max - min) per map (normalizeMinMax), for dense maps (CAM family,
 *    occlusion, activations);
 *  - { outlierPercent: p }: Captum's visualize_image_attr rule for sparse attribution maps
 *    (normalizeOutliers): |v| / t clipped to 1, where t is the smallest |v| at which the sorted
 *    |values| sum to (100 - p)% of their total. Captum's default is p = 2.
 */
export type DisplayScaling = 'min-max' | { outlierPercent: number };

/** Captum's default: the brightest values holding 2% of the total are shown saturated. */
export const CAPTUM_OUTLIERS: DisplayScaling = { outlierPercent: 2 };

/**
 * Captum's `_cumulative_sum_threshold(|values|, 100 - outlierPercent)`: with s the |values| sorted
 * ascending and S_k = s_1 + ... + s_k, the first s_k with S_k >= (100 - outlierPercent)/100 * S_n.
 * The values above it hold at most `outlierPercent` % of the total. 0 for an all-zero map.
 */
export function outlierThreshold(values: ArrayLike<number>, outlierPercent: number): number {
  if (!(outlierPercent >= 0 && outlierPercent <= 100)) throw new RangeError(`outlierPercent must be in [0, 100], got ${outlierPercent}`);
  const sorted = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]);
    sorted[i] = Number.isFinite(v) ? v : 0;
  }
  sorted.sort();
  let total = 0;
  for (const v of sorted) total += v;
  const target = total * 0.01 * (100 - outlierPercent);
  let sum = 0;
  for (const v of sorted) {
    sum += v;
    if (sum >= target) return v;
  }
  return sorted.length ? sorted[sorted.length - 1] : 0;
}

/**
 * Captum's visualize_image_attr(sign="absolute_value", outlier_perc=p) scaling:
 *   v -> min(|v| / t, 1),  t = outlierThreshold(values, p)
 * so a few extreme pixels no longer push every other pixel to the bottom of the colour map, as
 * min-max does on sparse maps. An all-zero map stays all zeros.
 */
export function normalizeOutliers(map: ArrayLike<number>, outlierPercent: number): Float32Array {
  return scaleClipped(map, outlierThreshold(map, outlierPercent));
}

/** min(|v| / t, 1) per value; all zeros when t is not positive. */
function scaleClipped(map: ArrayLike<number>, t: number): Float32Array {
  const out = new Float32Array(map.length);
  if (!(t > 0)) return out;
  for (let i = 0; i < map.length; i++) {
    const v = Math.abs(map[i]);
    out[i] = Number.isFinite(v) ? Math.min(1, v / t) : 0;
  }
  return out;
}

/** A map scaled to [0, 1] for display by `scaling`, and the map value shown at the top of the colour map. */
export function normalizeForDisplay(map: ArrayLike<number>, scaling: DisplayScaling): { values: Float32Array; top: number } {
  if (scaling === 'min-max') return { values: normalizeMinMax(map), top: valueRange(map)[1] };
  const t = outlierThreshold(map, scaling.outlierPercent);
  return { values: scaleClipped(map, t), top: t };
}

/** A short description of the scaling, as recorded in the heatmap's stats (`display`). */
export function describeScaling(scaling: DisplayScaling): string {
  return scaling === 'min-max' ? 'min-max' : `|v| / t, top ${scaling.outlierPercent}% of total clipped`;
}

/**
 * Bilinear resize of maps [n, h, w, c] to [n, H, W, c] with half-pixel centres, which is
 * OpenCV's cv2.resize(INTER_LINEAR) as used by pytorch-grad-cam.
 */
export function upsampleBilinear(maps: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  return tf.image.resizeBilinear(maps, [height, width], false, true);
}

/** A [0,1] map to RGB through a 256-entry lookup table. */
export function colorize(map01: ArrayLike<number>, cmap: Colormap): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(colormapRgb(i / 255, cmap), i * 3);
  const out = new Uint8Array(map01.length * 3);
  for (let i = 0; i < map01.length; i++) {
    const v = map01[i];
    const k = Math.round(Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * 255) * 3;
    out[i * 3] = lut[k];
    out[i * 3 + 1] = lut[k + 1];
    out[i * 3 + 2] = lut[k + 2];
  }
  return out;
}

/** out = (1 - alpha) * image + alpha * heat, per channel. */
export function blend(image: Uint8Array, heat: Uint8Array, alpha: number): Uint8Array {
  const out = new Uint8Array(image.length);
  for (let i = 0; i < image.length; i++) out[i] = Math.round((1 - alpha) * image[i] + alpha * heat[i]);
  return out;
}

/** Encodes interleaved 8-bit pixels (1 or 3 channels) as PNG or WebP (lossless). */
export async function encodeImage(pixels: Uint8Array, width: number, height: number, channels: 1 | 3, format: 'png' | 'webp'): Promise<Uint8Array> {
  let img = sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width, height, channels } });
  if (channels === 1) img = img.toColourspace('b-w');
  const buf = format === 'png' ? await img.png().toBuffer() : await img.webp({ lossless: true }).toBuffer();
  return new Uint8Array(buf);
}

/**
 * Lays out equally sized tiles (interleaved, `channels` per pixel) in a grid, each enlarged
 * `scale` times with nearest-neighbour and separated by `gap` pixels of `background`.
 */
export function tileGrid(tiles: Uint8Array[], tileW: number, tileH: number, channels: 1 | 3, opts: { columns?: number; scale?: number; gap?: number; background?: number } = {}) {
  const scale = opts.scale ?? 1;
  const gap = opts.gap ?? 1;
  const columns = opts.columns ?? Math.ceil(Math.sqrt(tiles.length));
  const rows = Math.ceil(tiles.length / columns);
  const cw = tileW * scale;
  const ch = tileH * scale;
  const width = columns * cw + (columns + 1) * gap;
  const height = rows * ch + (rows + 1) * gap;
  const pixels = new Uint8Array(width * height * channels).fill(opts.background ?? 255);
  tiles.forEach((tile, t) => {
    const ox = gap + (t % columns) * (cw + gap);
    const oy = gap + Math.floor(t / columns) * (ch + gap);
    for (let y = 0; y < ch; y++) {
      for (let x = 0; x < cw; x++) {
        const src = (Math.floor(y / scale) * tileW + Math.floor(x / scale)) * channels;
        const dst = ((oy + y) * width + ox + x) * channels;
        for (let c = 0; c < channels; c++) pixels[dst + c] = tile[src + c];
      }
    }
  });
  return { pixels, width, height };
}
