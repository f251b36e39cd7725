import sharp from 'sharp';
import { escapeHtml } from '../escape.ts';

/**
 * Line charts of deletion/insertion curves: an SVG string drawn here and rasterised by sharp
 * (librsvg), so the charts need no browser and no plotting package. One panel per curve kind,
 * one line per method, a shared legend below with each method's AUCs.
 */

/** Line colours (Tableau 10); baselines are drawn gray, each with its own dash pattern. */
const PALETTE = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#17becf', '#bcbd22', '#1f77b4'];
const BASELINE = '#8c8c8c';
const BASELINE_DASHES = ['6 4', '2 3', '10 3 2 3', '1 5'];

export interface ChartLine {
  label: string;
  /** y at each x of the panel. */
  values: readonly number[];
  baseline?: boolean;
}

export interface ChartPanel {
  title: string;
  xLabel: string;
  yLabel: string;
  x: readonly number[];
  lines: readonly ChartLine[];
}

export interface ChartLegendEntry {
  label: string;
  detail: string;
  baseline?: boolean;
}

const fmt = (v: number) => (Math.round(v * 100) / 100).toString();

/** The y axis: the largest value rounded up to a whole tick step (0.02, 0.05, 0.1 or 0.2). */
function yAxis(panels: readonly ChartPanel[]): { top: number; step: number } {
  let max = 0;
  for (const p of panels) for (const l of p.lines) for (const v of l.values) if (Number.isFinite(v) && v > max) max = v;
  const step = max <= 0.1 ? 0.02 : max <= 0.25 ? 0.05 : max <= 0.5 ? 0.1 : 0.2;
  return { top: Math.max(step, Math.ceil(max / step - 1e-9) * step), step };
}

/** Stroke of line / legend entry i of `entries`: methods by palette, baselines gray and dashed. */
export function lineStyle(entries: readonly { baseline?: boolean }[], i: number): string {
  if (!entries[i].baseline) return `stroke="${PALETTE[i % PALETTE.length]}"`;
  const k = entries.slice(0, i).filter((e) => e.baseline).length;
  return `stroke="${BASELINE}" stroke-dasharray="${BASELINE_DASHES[k % BASELINE_DASHES.length]}"`;
}

export function curvesSvg(title: string, panels: readonly ChartPanel[], legend: readonly ChartLegendEntry[]): { svg: string; width: number; height: number } {
  const panelW = 420;
  const panelH = 280;
  const margin = { left: 56, right: 16, top: 48, bottom: 44 };
  const width = panels.length * (panelW + margin.left + margin.right);
  const legendCols = 2;
  const legendRows = Math.ceil(legend.length / legendCols);
  const height = margin.top + panelH + margin.bottom + 16 + legendRows * 20 + 8;
  const { top, step } = yAxis(panels);
  const yTicks = Math.round(top / step);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" font-size="15" text-anchor="middle" fill="#1b1f24">${escapeHtml(title)}</text>`,
  ];
  panels.forEach((p, pi) => {
    const ox = pi * (panelW + margin.left + margin.right) + margin.left;
    const oy = margin.top;
    const X = (v: number) => ox + v * panelW;
    const Y = (v: number) => oy + panelH - (Math.min(Math.max(v, 0), top) / top) * panelH;
    parts.push(`<text x="${ox + panelW / 2}" y="${oy - 10}" font-size="14" text-anchor="middle" fill="#1b1f24">${escapeHtml(p.title)}</text>`);
    for (let t = 0; t <= 5; t++) {
      const xv = t / 5;
      parts.push(`<line x1="${X(xv)}" y1="${oy}" x2="${X(xv)}" y2="${oy + panelH}" stroke="#eceef1"/>`);
      parts.push(`<text x="${X(xv)}" y="${oy + panelH + 16}" font-size="11" text-anchor="middle" fill="#57606a">${fmt(xv)}</text>`);
    }
    for (let t = 0; t <= yTicks; t++) {
      const yv = t * step;
      parts.push(`<line x1="${ox}" y1="${Y(yv)}" x2="${ox + panelW}" y2="${Y(yv)}" stroke="#eceef1"/>`);
      parts.push(`<text x="${ox - 6}" y="${Y(yv) + 4}" font-size="11" text-anchor="end" fill="#57606a">${fmt(yv)}</text>`);
    }
    parts.push(`<rect x="${ox}" y="${oy}" width="${panelW}" height="${panelH}" fill="none" stroke="#57606a"/>`);
    parts.push(`<text x="${ox + panelW / 2}" y="${oy + panelH + 34}" font-size="12" text-anchor="middle" fill="#1b1f24">${escapeHtml(p.xLabel)}</text>`);
    parts.push(`<text transform="translate(${ox - 40} ${oy + panelH / 2}) rotate(-90)" font-size="12" text-anchor="middle" fill="#1b1f24">${escapeHtml(p.yLabel)}</text>`);
    p.lines.forEach((l, li) => {
      const pts = l.values.map((v, k) => (Number.isFinite(v) ? `${X(p.x[k]).toFixed(2)},${Y(v).toFixed(2)}` : '')).filter(Boolean).join(' ');
      parts.push(`<polyline points="${pts}" fill="none" ${lineStyle(p.lines, li)} stroke-width="${l.baseline ? 1.5 : 2}"/>`);
    });
  });
  const ly = margin.top + panelH + margin.bottom + 16;
  const colW = width / legendCols;
  legend.forEach((e, i) => {
    const x = 16 + (i % legendCols) * colW;
    const y = ly + Math.floor(i / legendCols) * 20;
    parts.push(`<line x1="${x}" y1="${y}" x2="${x + 24}" y2="${y}" ${lineStyle(legend, i)} stroke-width="2.5"/>`);
    parts.push(`<text x="${x + 32}" y="${y + 4}" font-size="12" fill="#1b1f24">${escapeHtml(e.label)} <tspan fill="#57606a">${escapeHtml(e.detail)}</tspan></text>`);
  });
  parts.push('</svg>');
  return { svg: parts.join('\n'), width, height };
}

/** Rasterises an SVG to 8-bit RGB on white. */
export async function rasterize(svg: string): Promise<{ pixels: Uint8Array; width: number; height: number; channels: 3 }> {
  const { data, info } = await sharp(Buffer.from(svg), { density: 72 }).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { pixels: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
}
