/**
 * A static scatter plot of a 2-D embedding as 8-bit RGB pixels (no fonts, no browser): discs
 * coloured by group over a white square, drawn in a seeded shuffled order so no class always
 * lies on top.
 */
import { mulberry32 } from '../random.ts';

/** Tableau 10 then its light variants (matplotlib's tab20 order): 20 distinguishable colours. */
export const PALETTE = [
  '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5',
] as const;

/** Names of the palette colours, for alt text. */
export const PALETTE_NAMES = [
  'blue', 'orange', 'green', 'red', 'purple', 'brown', 'pink', 'gray', 'olive', 'cyan',
  'light blue', 'light orange', 'light green', 'light red', 'light purple', 'light brown', 'light pink', 'light gray', 'light olive', 'light cyan',
] as const;

/** Points with no group. */
export const UNLABELLED_COLOR = '#b0b0b0';

/** The name of group g's colour. */
export function groupColorName(g: number | null): string {
  return g === null ? 'gray' : PALETTE_NAMES[g % PALETTE_NAMES.length];
}

/** The colour of group g (cycling through the palette), or the unlabelled grey for null. */
export function groupColor(g: number | null): string {
  return g === null ? UNLABELLED_COLOR : PALETTE[g % PALETTE.length];
}

const rgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

export interface ScatterOptions {
  size?: number;
  margin?: number;
  radius?: number;
  /** Disc opacity. */
  alpha?: number;
  seed?: number;
}

/** Draws y [n, 2] with the aspect ratio kept; `groups[i]` picks the colour. */
export function drawScatter(y: Float64Array, groups: readonly (number | null)[], opts: ScatterOptions = {}): { pixels: Uint8Array; width: number; height: number } {
  const n = y.length / 2;
  const size = opts.size ?? 800;
  const margin = opts.margin ?? 16;
  const radius = opts.radius ?? (n > 5000 ? 2 : n > 1000 ? 2.5 : 3.5);
  const alpha = opts.alpha ?? 0.75;
  const pixels = new Uint8Array(size * size * 3).fill(255);
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, y[2 * i]); x1 = Math.max(x1, y[2 * i]);
    y0 = Math.min(y0, y[2 * i + 1]); y1 = Math.max(y1, y[2 * i + 1]);
  }
  const span = Math.max(x1 - x0, y1 - y0);
  const inner = size - 2 * margin - 2 * radius;
  const scale = span > 0 ? inner / span : 0;
  const ox = margin + radius + (inner - (x1 - x0) * scale) / 2;
  const oy = margin + radius + (inner - (y1 - y0) * scale) / 2;
  const order = Array.from({ length: n }, (_, i) => i);
  const rand = mulberry32(opts.seed ?? 0);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const colors = new Map<number | null, number[]>();
  const r = Math.ceil(radius + 1);
  for (const i of order) {
    const g = groups[i] ?? null;
    let c = colors.get(g);
    if (!c) { c = rgb(groupColor(g)); colors.set(g, c); }
    const cx = span > 0 ? ox + (y[2 * i] - x0) * scale : size / 2;
    // image rows grow downwards: flip so that larger y is higher up
    const cy = span > 0 ? size - (oy + (y[2 * i + 1] - y0) * scale) : size / 2;
    for (let py = Math.floor(cy - r); py <= Math.ceil(cy + r); py++) {
      if (py < 0 || py >= size) continue;
      for (let px = Math.floor(cx - r); px <= Math.ceil(cx + r); px++) {
        if (px < 0 || px >= size) continue;
        const dist = Math.hypot(px + 0.5 - cx, py + 0.5 - cy);
        // one pixel of anti-aliasing at the rim
        const cover = Math.min(1, Math.max(0, radius + 0.5 - dist));
        if (cover <= 0) continue;
        const a = alpha * cover;
        const o = (py * size + px) * 3;
        for (let ch = 0; ch < 3; ch++) pixels[o + ch] = Math.round((1 - a) * pixels[o + ch] + a * c[ch]);
      }
    }
  }
  return { pixels, width: size, height: size };
}
