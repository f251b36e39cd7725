/**
 * Number and text formatting for the report. English (en-US) digits and separators everywhere,
 * independent of the build machine's locale, so two builds of one manifest give the same HTML.
 */

const intFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatInt(n: number): string {
  return intFormat.format(n);
}

/** Shapes as `28×28×16`; unknown (null) dimensions, such as the batch, as `?`. */
export function formatShape(shape: readonly (number | null)[]): string {
  return shape.length === 0 ? 'scalar' : shape.map((d) => (d === null ? '?' : String(d))).join('×');
}

/** Durations under 10 s in ms, longer ones in s or min. */
export function formatMs(ms: number): string {
  if (ms < 10_000) return `${formatInt(Math.round(ms))} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

export function formatPercent(p: number, digits = 1): string {
  return `${(p * 100).toFixed(digits)} %`;
}

/**
 * Stats and data cells: integers with separators, other numbers with 4 significant digits,
 * lists of numbers as shapes when the field is called `...shape`, other lists comma-separated.
 */
export function formatValue(v: unknown, key = ''): string {
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    if (Number.isInteger(v)) return formatInt(v);
    const a = Math.abs(v);
    return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(Number(v.toPrecision(4)));
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    if (v.length === 0) return '—';
    if (/shape$/i.test(key) && v.every((x) => typeof x === 'number' || x === null)) return formatShape(v as (number | null)[]);
    if (v.every((x) => x === null || typeof x !== 'object')) return v.map((x) => formatValue(x)).join(', ');
  }
  return JSON.stringify(v);
}

/** `2025-11-25T20:14:00.000Z` → `2025-11-25 20:14 UTC`. */
export function formatDate(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.valueOf())) return iso;
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)} UTC`;
}

export function shortHash(hash: string, length = 12): string {
  return hash.slice(0, length);
}

/**
 * Display size for a picture of natural size w×h: small pictures are scaled up by a whole
 * factor so every source pixel stays a crisp square (shown pixelated); large ones are kept as
 * they are, or scaled down to fit `max`, and shown smooth.
 */
export function displaySize(
  w: number | undefined,
  h: number | undefined,
  opts: { min: number; max: number },
): { width?: number; height?: number; pixelated: boolean } {
  if (!w || !h) return { pixelated: false };
  const side = Math.max(w, h);
  if (side < opts.min) {
    const scale = Math.max(1, Math.min(Math.floor(opts.min / side) + (opts.min % side ? 1 : 0), Math.floor(opts.max / side)));
    return { width: w * scale, height: h * scale, pixelated: scale > 1 };
  }
  if (side > opts.max) {
    const f = opts.max / side;
    return { width: Math.max(1, Math.round(w * f)), height: Math.max(1, Math.round(h * f)), pixelated: false };
  }
  return { width: w, height: h, pixelated: false };
}

/**
 * A layer name short enough for a tab: graph node paths (`StatefulPartitionedCall/model/block_16_project/Conv2D`,
 * ONNX `/features/features.12/Concat`) keep their last two segments after an ellipsis; other
 * names stay whole. The full name goes into the element's title.
 */
export function shortLayerName(name: string): string {
  const parts = name.split('/').filter(Boolean);
  if (parts.length <= 2 && name.length <= 40) return name;
  return parts.length <= 2 ? name : `…/${parts.slice(-2).join('/')}`;
}
