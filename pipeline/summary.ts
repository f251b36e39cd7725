import Handlebars from 'handlebars';
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
 * Renders `summary.md` (relative image links, for review documents next to the release folder)
 * and a self-contained `summary.html` (images inlined as data: URLs, no network) from the
 * manifest and the files it lists. Every model-supplied string is escaped: by Handlebars in HTML,
 * by `md` in Markdown.
 */
export async function renderSummaries(manifest: Manifest, releaseDir: string, extra: { accuracy?: number; labelled?: number } = {}) {
  const hb = Handlebars.create();
  hb.registerHelper('md', (s: unknown) => new hb.SafeString(escapeMarkdown(s)));
  hb.registerHelper('url', (p: string) => new hb.SafeString(urlPath(p)));
  hb.registerHelper('percent', (p: number) => `${(p * 100).toFixed(2)}%`);
  const inlined = new Map<string, string>();
  const images = new Set<string>();
  hb.registerHelper('inline', (p: string) => {
    images.add(p);
    return new hb.SafeString(inlined.get(p) ?? '');
  });

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
  for (const p of images) {
    const ext = p.split('.').pop()?.toLowerCase() ?? '';
    inlined.set(p, `data:${MIME[ext] ?? 'application/octet-stream'};base64,${(await readFile(join(releaseDir, p))).toString('base64')}`);
  }
  return { markdown: md, html: html(view) };
}
