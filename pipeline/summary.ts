import Handlebars from 'handlebars';
import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { escapeMarkdown } from './escape.ts';
import type { Manifest } from './manifest.ts';
import { metricsTableHtml, metricsTableMarkdown } from './metrics/table.ts';

const TEMPLATES = join(dirname(fileURLToPath(import.meta.url)), 'templates');

/** A relative link that survives spaces and other characters in file names. */
function urlPath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}

const MIME: Record<string, string> = { png: 'image/png', webp: 'image/webp', jpg: 'image/jpeg', jpeg: 'image/jpeg' };

/**
 * The CSS box (px) summary.html shows a picture in: 224 x 224 (the size of an ImageNet input),
 * or 640 x 360 for wide pictures (width >= 1.5 x height: the metrics' curve plots), whose text
 * would not be legible at 224. Pictures are fitted into it, enlarged or reduced.
 */
export function summaryBox(width: number, height: number): { width: number; height: number } {
  return width >= 1.5 * height ? { width: 640, height: 360 } : { width: 224, height: 224 };
}

/** Lossy WebP quality of the inlined pictures (sharp / libwebp, 0-100). */
export const SUMMARY_WEBP_QUALITY = 60;

/**
 * Pictures that take more than this many bits per pixel at SUMMARY_WEBP_QUALITY (noise-like
 * gradient maps, photo grids) are encoded again at SUMMARY_WEBP_QUALITY_BUSY, where their own
 * texture hides the coarser quantisation; the smaller result is kept.
 */
export const SUMMARY_BITS_PER_PIXEL = 1;
export const SUMMARY_WEBP_QUALITY_BUSY = 30;

/** A lossless copy (the release's file, or lossless WebP) is inlined when at most this much larger than the lossy one. */
const EXACT_SLACK = 1.25;

export interface InlinedPicture {
  /** data: URL of the picture as inlined. */
  url: string;
  /** Size the summary shows it at (CSS px). */
  width: number;
  height: number;
  /** The encoded picture is smaller than it is shown (enlarged with nearest-neighbour by CSS). */
  enlarged: boolean;
}

/**
 * The picture at `file` as summary.html inlines it: shown fitted into summaryBox, encoded at that
 * size or its own when smaller (never enlarged: the browser enlarges it, pixelated). The smallest
 * of lossy WebP (quality SUMMARY_WEBP_QUALITY, or SUMMARY_WEBP_QUALITY_BUSY above
 * SUMMARY_BITS_PER_PIXEL) and, when exact copies are possible (the release's
 * file when no reduction is needed; lossless WebP of a picture shown enlarged, where lossy
 * artefacts would be magnified), an exact copy unless it is more than EXACT_SLACK times larger.
 * Full-size pictures stay in the release folder and on the site.
 */
export async function inlinePicture(file: string): Promise<InlinedPicture> {
  const original = await readFile(file);
  const meta = await sharp(original).metadata();
  const w = meta.width ?? 1;
  const h = meta.height ?? 1;
  const box = summaryBox(w, h);
  const fit = Math.min(box.width / w, box.height / h);
  const width = Math.max(1, Math.round(w * fit));
  const height = Math.max(1, Math.round(h * fit));
  const reduced = fit < 1;
  const ew = reduced ? width : w;
  const eh = reduced ? height : h;
  const resized = () => (reduced ? sharp(original).resize(ew, eh, { fit: 'fill' }) : sharp(original));
  let lossy = await resized().webp({ quality: SUMMARY_WEBP_QUALITY, effort: 6 }).toBuffer();
  if (lossy.length * 8 > SUMMARY_BITS_PER_PIXEL * ew * eh) {
    const busy = await resized().webp({ quality: SUMMARY_WEBP_QUALITY_BUSY, effort: 6 }).toBuffer();
    if (busy.length < lossy.length) lossy = busy;
  }
  let best: { bytes: Buffer; mime: string } = { bytes: lossy, mime: 'image/webp' };
  const exact: { bytes: Buffer; mime: string }[] = [];
  if (!reduced) {
    const ext = file.split('.').pop()?.toLowerCase() ?? '';
    if (MIME[ext] && ext !== 'jpg' && ext !== 'jpeg') exact.push({ bytes: original, mime: MIME[ext] });
    if (fit > 1) exact.push({ bytes: await resized().webp({ lossless: true, effort: 4 }).toBuffer(), mime: 'image/webp' });
  }
  for (const e of exact) {
    if (e.bytes.length <= EXACT_SLACK * lossy.length && (best.bytes === lossy || e.bytes.length < best.bytes.length)) best = e;
  }
  return { url: `data:${best.mime};base64,${best.bytes.toString('base64')}`, width, height, enlarged: fit > 1 };
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Renders `summary.md` (relative image links to the release's full-size files, for review
 * documents next to the release folder) and a self-contained `summary.html` (display-size WebP
 * copies of the pictures inlined as data: URLs, see inlinePicture; no network) from the manifest
 * and the files it lists. Every model-supplied string is escaped: by Handlebars in HTML,
 * by `md` in Markdown.
 */
export async function renderSummaries(manifest: Manifest, releaseDir: string, extra: { accuracy?: number; labelled?: number } = {}) {
  const hb = Handlebars.create();
  hb.registerHelper('md', (s: unknown) => new hb.SafeString(escapeMarkdown(s)));
  hb.registerHelper('url', (p: string) => new hb.SafeString(urlPath(p)));
  hb.registerHelper('percent', (p: number) => `${(p * 100).toFixed(2)}%`);
  const inlined = new Map<string, InlinedPicture>();
  const images = new Set<string>();
  hb.registerHelper('inline', (p: string) => {
    images.add(p);
    return new hb.SafeString(inlined.get(p)?.url ?? '');
  });
  // width, height and the pixelated class of an inlined picture (after the first pass)
  hb.registerHelper('size', (p: string) => {
    const i = inlined.get(p);
    return new hb.SafeString(i ? `width="${i.width}" height="${i.height}"${i.enlarged ? ' class="pixelated"' : ''}` : '');
  });
  hb.registerHelper('figureWidth', (p: string) => new hb.SafeString(String(inlined.get(p)?.width ?? 224)));

  const titleOf = new Map(manifest.methods.map((m) => [m.id, m.title]));
  const pictures = manifest.artifacts.filter((a) => a.kind === 'image');
  const metricsArtifact = manifest.artifacts.find((a) => a.id === 'metrics/metrics' && a.kind === 'data');
  const metricsJson: unknown = metricsArtifact ? JSON.parse(await readFile(join(releaseDir, metricsArtifact.path), 'utf8')) : undefined;
  const view = {
    metricsMarkdown: metricsJson ? metricsTableMarkdown(metricsJson) : '',
    metricsHtml: metricsJson ? metricsTableHtml(metricsJson) : '',
    release: manifest.release,
    createdAt: manifest.createdAt,
    model: manifest.model,
    backend: `${manifest.backend.name} (tfjs ${manifest.backend.tfjsBackend} ${manifest.backend.tfjsVersion})`,
    inputShape: manifest.model.inputShape.join(' × '),
    classCount: manifest.model.classes.length.toLocaleString('en-US'),
    params: manifest.model.params.toLocaleString('en-US'),
    accuracy: extra.accuracy === undefined ? undefined : `${(extra.accuracy * 100).toFixed(2)}% top-1 on ${(extra.labelled ?? 0).toLocaleString('en-US')} labelled dataset images`,
    configHash: manifest.configHash,
    toolVersion: manifest.tool.version,
    methods: manifest.methods,
    skipped: manifest.skipped ?? [],
    badImages: manifest.dataset.skipped ?? [],
    samples: manifest.samples.map((s) => {
      const mine = pictures.filter((a) => a.image === s.id);
      const groups = [...new Set(mine.map((a) => a.method))].map((m) => ({ title: titleOf.get(m) ?? m, images: mine.filter((a) => a.method === m) }));
      return { ...s, groups };
    }),
    modelWide: pictures.filter((a) => a.image === undefined),
  };
  const md = hb.compile(await readFile(join(TEMPLATES, 'summary.md.hbs'), 'utf8'), { strict: false })(view);
  const html = hb.compile(await readFile(join(TEMPLATES, 'summary.html.hbs'), 'utf8'));
  html(view); // first pass collects the images to inline
  const list = [...images];
  const encoded = await mapLimit(list, 4, (p) => inlinePicture(join(releaseDir, p)));
  list.forEach((p, i) => inlined.set(p, encoded[i]));
  return { markdown: md, html: html(view) };
}
