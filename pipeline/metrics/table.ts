import { escapeHtml, escapeMarkdown } from '../escape.ts';
import type { CurveMetric, MetricsJson, MetricsRow } from './types.ts';

/**
 * The summary table of metrics.json (method x metric, best per column, the random baseline row,
 * flags), as rows for the site and as Markdown / HTML for summary.md / summary.html.
 */

type Column = MetricsRow['best'][number];

export const COLUMNS: { key: Column; title: string; better: 'lower' | 'higher' | 'zero'; present: (m: MetricsJson) => boolean }[] = [
  { key: 'deletion', title: 'Deletion AUC', better: 'lower', present: (m) => m.deletion !== undefined },
  { key: 'insertion', title: 'Insertion AUC', better: 'higher', present: (m) => m.insertion !== undefined },
  { key: 'randomization', title: 'Randomization ρ', better: 'zero', present: (m) => (m.randomization?.steps.length ?? 0) > 0 },
  { key: 'pointing', title: 'Pointing game', better: 'higher', present: (m) => (m.pointingGame?.boxes.length ?? 0) > 0 },
];

/**
 * Rows with `best` filled in: per column the best non-baseline value(s) (ties all marked). For
 * the randomization correlation the best is the one closest to 0 (least similar to the original).
 */
export function markBest(rows: MetricsRow[]): MetricsRow[] {
  for (const c of COLUMNS) {
    const score = (r: MetricsRow) => (c.better === 'zero' ? Math.abs(r[c.key] as number) : (r[c.key] as number));
    const vals = rows.filter((r) => !r.baseline && r[c.key] !== null).map(score);
    if (vals.length === 0) continue;
    const best = c.better === 'higher' ? Math.max(...vals) : Math.min(...vals);
    for (const r of rows) if (!r.baseline && r[c.key] !== null && score(r) === best) r.best.push(c.key);
  }
  return rows;
}

/**
 * The table step, after the metrics ran: one row per entry of `methods` (methods, then the
 * baselines) with its mean deletion and insertion AUC, its randomization correlation after the
 * full cascade, its pointing accuracy, its flags, and whether it beats its matched baseline.
 */
export function metricsTable(json: Omit<MetricsJson, 'table'>): MetricsRow[] {
  const meanAuc = (c: CurveMetric | undefined, id: string) => c?.mean.find((m) => m.method === id)?.auc ?? null;
  const beats = (c: CurveMetric | undefined, id: string, against: string, lower: boolean) => {
    const a = meanAuc(c, id);
    const b = meanAuc(c, against);
    return a === null || b === null ? null : lower ? a < b : a > b;
  };
  return markBest(json.methods.map((m): MetricsRow => {
    const rnd = json.randomization?.methods.find((x) => x.method === m.id);
    return {
      method: m.id,
      title: m.title,
      baseline: m.baseline === true,
      deletion: meanAuc(json.deletion, m.id),
      insertion: meanAuc(json.insertion, m.id),
      randomization: rnd?.final ?? null,
      pointing: json.pointingGame?.methods.find((x) => x.method === m.id)?.accuracy ?? null,
      flagged: rnd?.flagged ?? false,
      warned: json.flags.some((f) => f.method === m.id && f.severity === 'warn'),
      best: [],
      ...(m.against ? { against: m.against, beats: { deletion: beats(json.deletion, m.id, m.against, true), insertion: beats(json.insertion, m.id, m.against, false) } } : {}),
    };
  }));
}

/** Which way is better, in the header: lower, higher, closer to 0. */
const ARROW = { lower: '↓', higher: '↑', zero: '→0' } as const;

const num = (v: number | null) => (v === null ? '—' : v.toFixed(3));

/** A method's mean deletion / insertion AUC is no better than its matched random baseline's. */
export function notBetter(r: MetricsRow, key: Column): boolean {
  return (key === 'deletion' || key === 'insertion') && r.beats?.[key] === false;
}

/** The random baselines in words: noise on each map's own grid. */
export function baselineNote(m: MetricsJson): string | undefined {
  const baselines = m.methods.filter((x) => x.baseline);
  if (baselines.length === 0 || !(m.deletion || m.insertion)) return undefined;
  const per = m.methods.filter((x) => !x.baseline && x.against).map((x) => `${x.title}: ${titleOf(m, x.against!)}`);
  return `Random baselines: uniform noise on each map's own grid, upsampled like the maps, so a map is compared with chance at its own resolution (scattered single-pixel removals hurt a model more than any contiguous region)${per.length ? `; ${per.join(', ')}` : ''}. ✗: a mean AUC no better than that baseline's.`;
}

function columnNote(m: MetricsJson): string[] {
  const notes: string[] = [];
  if (m.deletion) notes.push(`Deletion: area under p(class) as the top-ranked pixels are replaced by ${fillText(m.deletion.fill)}, ${m.deletion.pixelsPerStep} px per step (lower is better).`);
  if (m.insertion) notes.push(`Insertion: area under p(class) as the top-ranked pixels are revealed on a blurred copy (σ = ${m.insertion.sigma} px) (higher is better).`);
  const base = baselineNote(m);
  if (base) notes.push(base);
  if (m.randomization?.steps.length) {
    notes.push(`Randomization: mean Spearman correlation ρ of |map| with the original map after re-initialising all ${m.randomization.steps.at(-1)!.randomized} weighted layers from the top (closer to 0 is better; above ${m.randomization.threshold} is flagged).`);
    const skipped = skippedText(m);
    if (skipped) notes.push(skipped);
  } else if (m.randomization?.note) {
    notes.push(`Randomization test: ${m.randomization.note}.`);
  }
  if (m.pointingGame && m.pointingGame.boxes.length) notes.push(`Pointing game: share of the ${m.pointingGame.boxes.length} samples with a box whose map maximum lies in it (tolerance ${m.pointingGame.tolerance.toFixed(1)} px) (higher is better).`);
  return notes;
}

/** The table as Markdown (best values in bold, flagged methods with ⚠, the baseline in italics), flags and notes below. */
export function metricsTableMarkdown(metricsJson: unknown): string {
  const m = metricsJson as MetricsJson;
  if (!m || !Array.isArray(m.table) || m.table.length === 0) return '';
  const cols = COLUMNS.filter((c) => c.present(m));
  const lines: string[] = [];
  lines.push(`| Method | ${cols.map((c) => `${escapeMarkdown(c.title)} ${ARROW[c.better]}`).join(' | ')} |`);
  lines.push(`| --- | ${cols.map(() => '---:').join(' | ')} |`);
  for (const r of m.table) {
    const name = r.baseline ? `*${escapeMarkdown(r.title)}*` : `${escapeMarkdown(r.title)}${r.flagged ? ' ⚠' : r.warned ? ' ◐' : ''}`;
    const cells = cols.map((c) => {
      const text = c.key === 'pointing' && r.pointing !== null ? `${(r.pointing * 100).toFixed(1)}%` : num(r[c.key]);
      const flagged = c.key === 'randomization' && r.flagged ? ' ⚠' : c.key === 'randomization' && r.warned ? ' ◐' : '';
      return `${r.best.includes(c.key) ? `**${text}**` : text}${flagged}${notBetter(r, c.key) ? ' ✗' : ''}`;
    });
    lines.push(`| ${name} | ${cells.join(' | ')} |`);
  }
  const out = [lines.join('\n')];
  if (m.flags.length) out.push(m.flags.map((f) => `> **${f.severity === 'warn' ? '◐' : '⚠'} ${escapeMarkdown(titleOf(m, f.method))}:** ${escapeMarkdown(f.message)}`).join('\n>\n'));
  const notes = columnNote(m);
  if (notes.length) out.push(notes.map((n) => `- ${escapeMarkdown(n)}`).join('\n'));
  return `${out.join('\n\n')}\n`;
}

/** The same table as an HTML fragment (for summary.html). */
export function metricsTableHtml(metricsJson: unknown): string {
  const m = metricsJson as MetricsJson;
  if (!m || !Array.isArray(m.table) || m.table.length === 0) return '';
  const cols = COLUMNS.filter((c) => c.present(m));
  const head = `<tr><th scope="col">Method</th>${cols.map((c) => `<th scope="col">${escapeHtml(c.title)} ${ARROW[c.better]}</th>`).join('')}</tr>`;
  const body = m.table.map((r) => {
    const name = r.baseline ? `<em>${escapeHtml(r.title)}</em>` : `${escapeHtml(r.title)}${r.flagged ? ' <strong title="failed the randomization sanity check">⚠</strong>' : r.warned ? ' <strong title="insensitive to the higher layers in the randomization test">◐</strong>' : ''}`;
    const cells = cols.map((c) => {
      const text = c.key === 'pointing' && r.pointing !== null ? `${(r.pointing * 100).toFixed(1)}%` : num(r[c.key]);
      const shown = r.best.includes(c.key) ? `<strong>${text}</strong>` : text;
      const mark = notBetter(r, c.key) ? ` <span title="no better than ${escapeHtml(titleOf(m, r.against!))}">✗</span>` : '';
      return `<td class="num">${shown}${c.key === 'randomization' && r.flagged ? ' ⚠' : c.key === 'randomization' && r.warned ? ' ◐' : ''}${mark}</td>`;
    });
    return `<tr><th scope="row">${name}</th>${cells.join('')}</tr>`;
  });
  const flags = m.flags.map((f) => `<p class="flag"><strong>${f.severity === 'warn' ? '◐' : '⚠'} ${escapeHtml(titleOf(m, f.method))}:</strong> ${escapeHtml(f.message)}</p>`).join('\n');
  const notes = columnNote(m);
  return [`<table>\n${head}\n${body.join('\n')}\n</table>`, flags, notes.length ? `<ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : ''].filter(Boolean).join('\n');
}

/** The methods the randomization test left out for their cost, in words (undefined: none). */
export function skippedText(m: MetricsJson): string | undefined {
  const skipped = m.randomization?.skipped ?? [];
  if (skipped.length === 0) return undefined;
  return `Not rerun in the randomization test, for their cost (model passes per sample, at every cascade point): ${skipped.map((x) => `${titleOf(m, x.method)} (${x.passes})`).join(', ')}; list them in metrics.randomization.methods to test them.`;
}

/** How removed pixels were filled, in words. */
export function fillText(fill: NonNullable<MetricsJson['deletion']>['fill']): string {
  if (fill.source === 'value') return `pixel value ${fill.pixel}`;
  return fill.source === 'dataset' ? "the dataset's mean colour" : "the samples' mean colour";
}

function titleOf(m: MetricsJson, id: string): string {
  return m.methods.find((x) => x.id === id)?.title ?? id;
}
