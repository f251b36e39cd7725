/**
 * Small helpers shared by the tile views (filter grids, activation grids): the linear map of
 * values to 8-bit gray (value ranges: render.ts valueRange).
 */

/** (v - lo) / (hi - lo) in [0, 1]; `flat` where the range is empty. */
export function unitScale(lo: number, hi: number, flat: number): (v: number) => number {
  return (v) => (hi > lo ? (v - lo) / (hi - lo) : flat);
}

/** One gray tile: round(255 * scale(v)) per value. */
export function grayTile(values: ArrayLike<number>, scale: (v: number) => number): Uint8Array {
  const out = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Math.round(Math.min(1, Math.max(0, scale(values[i]))) * 255);
  return out;
}
