import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { blend, colorize, describeScaling, normalizeForDisplay, valueRange, type DisplayScaling } from '../render.ts';
import type { MethodContext } from './types.ts';

export { CAPTUM_OUTLIERS } from '../render.ts';

/** Heatmap opacity in overlays, shared by every method that writes maps. */
export const opacityOption = z.number().min(0).max(1).default(0.5).describe('Heatmap opacity in the overlay (0: the image alone, 1: the heatmap alone)');

export interface SampleMaps {
  /** Maps as computed (before upsampling or scaling) [n, h, w]: saved as raw .npy. */
  raw: tf.Tensor3D;
  /** Maps at the input size [n, H, W]: scaled to [0, 1] (MapMeta.display), colour-mapped and blended. */
  display: tf.Tensor3D;
}

export interface MapMeta {
  method: string;
  title: string;
  layer?: string;
  /** Class explained per sample. */
  targets: readonly number[];
  /** Overlay opacity. */
  opacity: number;
  /** Distinguishes several maps of one method, sample and class (e.g. "vs-12"). */
  variant?: string;
  /** Extra caption for the class (e.g. `"cat" vs "dog"`). */
  classCaption?: (target: number, index: number) => string;
  stats?: (index: number) => Record<string, number | string | boolean>;
  /** How to read the heatmap, for the alt text (default: bright regions raised the score). */
  reading?: string;
  /** The map explains no class (e.g. activations): leave class and className out. */
  classless?: boolean;
  /**
   * The map's own resolution [rows, cols] when it is coarser than the raw array (occlusion's
   * stride cells in an input-sized map); default: the raw shape [h, w]. Saved as the stats
   * gridHeight / gridWidth; the metrics match their random baseline to it.
   */
  grid?: [number, number];
  /**
   * How the heatmap picture scales the display map to [0, 1] (render.ts DisplayScaling; default
   * 'min-max'). Sparse attribution maps (the input-gradient methods) pass CAPTUM_OUTLIERS:
   * |v| / t clipped to 1, t the value above which the brightest pixels hold 2% of the total, as
   * Captum's visualize_image_attr. Only the pictures change: the raw .npy is the map as computed.
   * Saved as the stats `display` (and `displayTop`, the value drawn at the top of the colour map).
   */
  display?: DisplayScaling;
}

/**
 * Writes, for every sample, the colour-mapped heatmap (with the raw map as .npy) and the overlay
 * on the image. Shared by every method that yields one map per sample and class.
 */
export async function writeSampleMaps(ctx: MethodContext, maps: SampleMaps, meta: MapMeta): Promise<void> {
  const [n, h, w] = maps.raw.shape;
  const [, H, W] = maps.display.shape;
  const raw = (await maps.raw.data()) as Float32Array;
  const disp = (await maps.display.data()) as Float32Array;
  const scaling = meta.display ?? 'min-max';
  for (let i = 0; i < n; i++) {
    const s = ctx.samples[i];
    const cls = meta.targets[i];
    const className = ctx.classes[cls] ?? String(cls);
    const caption = meta.classCaption?.(cls, i) ?? `"${className}"`;
    const scaled = normalizeForDisplay(disp.subarray(i * H * W, (i + 1) * H * W), scaling);
    const heat = colorize(scaled.values, ctx.settings.colormap);
    const rawMap = raw.slice(i * h * w, (i + 1) * h * w);
    const [min, max] = valueRange(rawMap);
    const key = meta.variant ? `${cls}-${meta.variant}` : `${cls}`;
    const base = { method: meta.method, image: s.id, ...(meta.classless ? {} : { class: cls, className }), ...(meta.layer ? { layer: meta.layer } : {}) };
    const at = meta.layer ? ` at ${meta.layer}` : '';
    await ctx.out.image(`${meta.method}/${s.id}`, `${key}-heatmap`, {
      ...base,
      id: `${meta.method}/${s.id}/${key}/heatmap`,
      title: `${meta.title} for ${caption}${at}`,
      alt: `${meta.title} heatmap of sample ${s.source} for ${caption}${at}; ${meta.reading ?? 'bright regions raised the score'}`,
      stats: { min, max, mapHeight: h, mapWidth: w, gridHeight: meta.grid?.[0] ?? h, gridWidth: meta.grid?.[1] ?? w, display: describeScaling(scaling), ...(scaling === 'min-max' ? {} : { displayTop: scaled.top }), ...(meta.stats?.(i) ?? {}) },
    }, { pixels: heat, width: W, height: H, channels: 3 }, { data: rawMap, shape: [h, w] });
    await ctx.out.image(`${meta.method}/${s.id}`, `${key}-overlay`, {
      ...base,
      id: `${meta.method}/${s.id}/${key}/overlay`,
      title: `${meta.title} over the image for ${caption}`,
      alt: `${meta.title} heatmap blended over sample ${s.source} for ${caption}`,
    }, { pixels: blend(s.display, heat, meta.opacity), width: W, height: H, channels: 3 });
  }
}
