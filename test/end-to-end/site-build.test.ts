import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConvlensError } from '../../pipeline/errors.ts';
import { MemoryLogger } from '../../pipeline/logger.ts';
import type { Manifest } from '../../pipeline/manifest.ts';
import { buildSite } from '../../pipeline/site.ts';
import { listedFiles } from '../../src/lib/manifest.ts';
import { FIXTURE_PARAMS, HOSTILE_CLASS, makeFixtureRelease } from '../fixtures/make-manifest.ts';
import { decodeEntities } from '../helpers/html.ts';

/**
 * Builds the real site (Astro, no mocks) for the synthetic fixture release into a temp folder,
 * served under a non-root base, and checks it as a reader would get it from disk (file://).
 * An older release (other predictions) sits beside it for the releases and compare pages.
 */
const RELEASE = 'fixture-1';
const OLDER = 'fixture-0';
let work: string;
let outputDir: string;
let siteDir: string;
let manifest: Manifest;
let pages: Map<string, string>;
let built: { siteDir: string; pages: number };
const logger = new MemoryLogger();

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'));
}

function attributes(html: string, name: string): string[] {
  const body = html.replace(/<style[\s\S]*?<\/style>/gi, '');
  return [...body.matchAll(new RegExp(`\\s${name}="([^"]*)"`, 'g'))].map((m) => decodeEntities(m[1]));
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'convlens-site-'));
  outputDir = join(work, 'output');
  await makeFixtureRelease(outputDir, OLDER, { createdAt: '2025-11-20T08:00:00.000Z', variant: true });
  ({ manifest } = await makeFixtureRelease(outputDir, RELEASE));
  built = await buildSite({ outputDir, release: RELEASE, base: '/convlens-report/', logger });
  siteDir = built.siteDir;
  pages = new Map();
  for (const f of await listFiles(siteDir)) {
    if (f.endsWith('.html') && !f.startsWith('artifacts/')) pages.set(f, await readFile(join(siteDir, f), 'utf8'));
  }
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('buildSite on a fixture release', () => {
  it('writes every page and reports the count', () => {
    expect(siteDir).toBe(join(outputDir, 'site'));
    const expected = [
      'index.html',
      'filters/index.html',
      ...manifest.samples.map((s) => `samples/${s.id}/index.html`),
      'methods/class-model/index.html',
      'layers/index.html',
      'layers/conv2d-1/index.html',
      'layers/conv2d-2/index.html',
      'classes/index.html',
      'classes/0/index.html',
      'classes/1/index.html',
      'classes/2/index.html',
      'embedding/index.html',
      'releases/index.html',
      `releases/${OLDER}/index.html`,
    ];
    expect([...pages.keys()].sort()).toEqual(expected.sort());
    expect(built.pages).toBe(expected.length);
    expect(logger.text()).toMatch(/site: \d+ pages/);
  });

  it('restores the environment it changed', () => {
    expect(process.env.CONVLENS_RELEASE).toBeUndefined();
    expect(process.env.CONVLENS_SITE_DIR).toBeUndefined();
  });

  it('copies exactly the files the manifest lists, unchanged', async () => {
    const listed = new Set<string>();
    for (const s of manifest.samples) listed.add(s.path);
    for (const a of manifest.artifacts) {
      listed.add(a.path);
      if (a.raw) listed.add(a.raw.path);
      for (const f of a.files ?? []) listed.add(f);
    }
    listed.add('summary.md');
    listed.add('summary.html');
    expect(new Set(listedFiles(manifest))).toEqual(listed);
    const copied = (await listFiles(join(siteDir, 'artifacts'))).sort();
    expect(copied).toEqual([...listed].sort());
    for (const f of copied) {
      const [a, b] = await Promise.all([readFile(join(siteDir, 'artifacts', f)), readFile(join(outputDir, 'releases', RELEASE, f))]);
      expect(a.equals(b), f).toBe(true);
    }
    const top = (await readdir(siteDir)).sort();
    expect(top).toEqual(['artifacts', 'classes', 'embedding', 'favicon.svg', 'filters', 'index.html', 'js', 'layers', 'methods', 'releases', 'samples']);
  });

  it('shows every picture of the release on some page', () => {
    const referenced = new Set([...pages.values()].flatMap((h) => [...attributes(h, 'src'), ...attributes(h, 'href')]).map((u) => decodeURIComponent(u.split('#')[0]).replace(/^(\.\.\/)+/, '')));
    for (const a of manifest.artifacts) {
      expect(referenced.has(`artifacts/${a.path}`), a.id).toBe(true);
    }
  });

  it('keeps every page small', async () => {
    let largest = 0;
    for (const html of pages.values()) largest = Math.max(largest, Buffer.byteLength(html));
    expect(largest).toBeLessThan(3 * 1024 * 1024);
  });

  it('links only relatively, and every local href/src resolves to a file (and anchor)', async () => {
    let checked = 0;
    for (const [page, html] of pages) {
      const pageFile = join(siteDir, page);
      for (const url of [...attributes(html, 'href'), ...attributes(html, 'src')]) {
        if (/^https?:\/\//i.test(url)) continue;
        expect(url, `${page}: ${url}`).not.toMatch(/^(\/|[a-z][a-z0-9+.-]*:)/i);
        const [pathPart, fragment] = url.split('#', 2);
        const path = pathPart.split('?')[0];
        let target = path === '' ? pageFile : resolve(dirname(pageFile), decodeURIComponent(path));
        if (path.endsWith('/')) target = join(target, 'index.html');
        expect(target.startsWith(siteDir + sep), `${page}: ${url} leaves the site`).toBe(true);
        const st = await stat(target).catch(() => undefined);
        expect(st?.isFile(), `${page}: ${url} -> ${target}`).toBe(true);
        if (fragment) {
          const targetHtml = await readFile(target, 'utf8');
          expect(targetHtml.includes(`id="${decodeURIComponent(fragment)}"`), `${page}: ${url} anchor`).toBe(true);
        }
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
    expect(pages.get('samples/cat-01/index.html')).toContain('href="../../index.html"');
    expect(pages.get('samples/dog-02/index.html')).toContain('src="../../artifacts/grad-cam/dog-02/class%201%20%23top.png"');
  });

  it('escapes model-supplied strings everywhere, attributes included', () => {
    const all = [...pages.values()].join('\n');
    expect(all).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(all).not.toContain('<img src=x onerror');
    expect(all).not.toMatch(/href="\s*javascript:/i);
    const alts = [...pages.values()].flatMap((h) => attributes(h, 'alt'));
    expect(alts.some((a) => a.includes(HOSTILE_CLASS))).toBe(true);
  });

  it('gives every image alt text and a size, lazy loading only in the long lists; small pictures are pixelated', () => {
    for (const [page, html] of pages) {
      for (const tag of html.match(/<img\b[^>]*>/g) ?? []) {
        expect(tag, page).toMatch(/\salt="[^"]+"/);
        // lazy images are empty in prints and full-page captures: only the classes and embedding
        // pages' long lists are lazy (see the eager.js test below)
        if (!/^(classes|embedding)\/index\.html$/.test(page)) expect(tag, page).not.toContain('loading="lazy"');
        expect(tag, page).toMatch(/\swidth="\d+"/);
        expect(tag, page).toMatch(/\sheight="\d+"/);
      }
    }
    const filters = pages.get('filters/index.html')!;
    expect(filters.match(/<img\b[^>]*class="pixelated"/g)?.length).toBe(2);
    expect(filters).toContain('image-rendering:pixelated');
  });

  it('shows the model card, layers, samples and timings on the overview', () => {
    const index = pages.get('index.html')!;
    expect(index).toContain(FIXTURE_PARAMS.toLocaleString('en-US'));
    expect(index).toContain('?×30×30×8');
    expect(index).toContain('abababababab');
    expect(index).toContain('href="samples/cat-01/index.html"');
    expect(index).toContain('12.4 s');
    expect(index).not.toContain('<script');
  });

  it('shows top-5 predictions and prev/next links on sample pages', () => {
    const cat = pages.get('samples/cat-01/index.html')!;
    expect(cat.match(/<tr class="labelled"|<tr\b/g)?.length).toBeGreaterThanOrEqual(6);
    expect(cat).toContain('71.0 %');
    expect(cat).toContain('href="../../samples/dog-02/index.html" rel="next"');
    expect(cat).toContain('class-2.npy');
    const dog = pages.get('samples/dog-02/index.html')!;
    expect(dog).toContain('href="../../samples/cat-01/index.html" rel="prev"');
  });

  it('puts the explanations side by side with one legend, radio tabs for several targets and stackable overlays', () => {
    const cat = pages.get('samples/cat-01/index.html')!;
    expect(cat).toContain('Colour map <strong>turbo</strong>');
    expect(cat).toMatch(/class="legend-ramp"[^>]*style="background: linear-gradient\(to right, rgb\(/);
    expect(cat).toContain('src="../../js/report.js"');
    // contrastive Grad-CAM: two targets -> two radios in one group, the first checked
    const radios = [...cat.matchAll(/<input type="radio" class="tab-radio[^"]*" name="([^"]+)" id="[^"]+"( checked)?/g)];
    const groups = new Map<string, number>();
    for (const r of radios) groups.set(r[1], (groups.get(r[1]) ?? 0) + 1);
    expect([...groups.values()]).toContain(2);
    expect(cat).toContain('cat vs dog');
    expect(cat).toContain('cat vs &lt;img src=x onerror=alert(1)&gt;');
    // heatmap + overlay: the overlay shows without JS, the data attributes say what to stack
    expect(cat).toMatch(/data-heat="..\/..\/artifacts\/grad-cam\/cat-01\/0-heatmap.png"/);
    expect(cat).toContain('src="../../artifacts/grad-cam/cat-01/0-overlay.png"');
    expect(cat).toContain('data-heat-controls hidden');
    // the original is a click away
    expect(cat).toContain('href="../../artifacts/samples/cat-01.png"');
  });

  it('has a page per layer with filters, activations, top patches and feature visualizations', () => {
    const c1 = pages.get('layers/conv2d-1/index.html')!;
    expect(c1).toContain('filters/conv2d_1.png');
    expect(c1).toContain('activations/cat-01/conv2d_1-channels.png');
    expect(c1).toContain('id="act-cat-01"');
    const c2 = pages.get('layers/conv2d-2/index.html')!;
    expect(c2).toContain('top-patches/conv2d_2/channel-0.png');
    expect(c2).toContain('top-patches/conv2d_2/patches.json');
    expect(c2).toContain('class-visualization/conv2d_2-channel-3.png');
    expect(pages.get('index.html')).toContain('href="layers/conv2d-1/index.html"');
  });

  it('shows class visualizations with the probability reached, flags misses, and the most and least sure images', () => {
    const index = pages.get('classes/index.html')!;
    expect(index).toContain('97.0 %');
    expect(index).toContain('did not reach the target');
    expect(index).toContain('Top-1 accuracy 50.0 %');
    const hostile = pages.get('classes/2/index.html')!;
    expect(hostile).toContain('did not reach the target');
    expect(hostile).toContain('dataset-predictions/thumbs/img-4.png');
    expect(hostile).toContain('dataset-predictions/thumbs/img-5.png');
    expect(pages.get('index.html')).toContain('50.0 % top-1 on 6 labelled images');
  });

  it('gives the embedding page its points (escaped, in an attribute), the static scatter and the misclassified list', () => {
    const page = pages.get('embedding/index.html')!;
    const raw = /data-scatter="([^"]*)"/.exec(page)![1];
    expect(raw).not.toContain('<');
    const data = JSON.parse(decodeEntities(raw));
    expect(data.n).toBe(6);
    expect(data.labels).toContain(HOSTILE_CLASS);
    expect(data.thumb.prefix + data.thumb.mid[0] + data.thumb.suffix).toBe('../artifacts/embedding/thumbs/img-0.png');
    expect(page).toContain('src="../artifacts/embedding/scatter.png"');
    expect(page).toContain('Misclassified images (3)');
    expect(page).toContain('src="../js/scatter.js"');
  });

  it('loads pictures eagerly (prints and full-page captures show them) except in the long lists, which load eager.js', () => {
    const lazyPages: string[] = [];
    for (const [name, html] of pages) {
      const body = html.replace(/<style[\s\S]*?<\/style>/gi, '');
      const lazy = [...body.matchAll(/<img\b[^>]*\sloading="lazy"/g)].length;
      if (lazy === 0) continue;
      lazyPages.push(name);
      const depth = name.split('/').length - 1;
      expect(html, name).toContain(`src="${'../'.repeat(depth)}js/eager.js"`);
    }
    expect(lazyPages.sort()).toEqual(['classes/index.html', 'embedding/index.html']);
    expect(existsSync(join(siteDir, 'js', 'eager.js'))).toBe(true);
  });

  it('puts every table in a box that scrolls sideways, so no table widens a narrow page', () => {
    let tables = 0;
    for (const [name, html] of pages) {
      const body = html.replace(/<style[\s\S]*?<\/style>/gi, '');
      const all = [...body.matchAll(/<table\b/g)].length;
      const boxed = [...body.matchAll(/<div class="[^"]*\btable-scroll\b[^"]*"[^>]*>\s*<table\b/g)].length;
      expect(boxed, name).toBe(all);
      tables += all;
    }
    expect(tables).toBeGreaterThan(5);
  });

  it('lists every release newest first and compares this one with the others', async () => {
    const index = pages.get('releases/index.html')!;
    expect(index.indexOf(RELEASE)).toBeLessThan(index.lastIndexOf(OLDER));
    expect(index).toContain(`href="../releases/${OLDER}/index.html"`);
    expect(index).toContain('25.0 %');
    const cmp = pages.get(`releases/${OLDER}/index.html`)!;
    expect(cmp).toMatch(new RegExp(`<h1[^>]*>${RELEASE} <span[^>]*>vs</span> ${OLDER}</h1>`));
    expect(cmp).toContain('top-1 changed');
    expect(cmp).toContain('+30.0 pp'); // cat: 0.71 now, 0.41 before
    // the weights differ (their SHA-256 in the manifests), shown in the differences table
    expect(cmp).toMatch(/<th scope="row"[^>]*>Weights<\/th><td[^>]*>sha256 efefefefefef<\/td><td[^>]*>sha256 cdcdcdcdcdcd<\/td>/);
    // only the other release's files the page shows are copied, beside it
    const prefix = `../../releases/${OLDER}/`;
    const shown = new Set(attributes(cmp, 'src').filter((u) => u.startsWith(prefix)).map((u) => decodeURIComponent(u.slice(prefix.length))));
    expect(attributes(cmp, 'src').some((u) => u.startsWith('../../artifacts/'))).toBe(true);
    const copied = new Set((await listFiles(join(siteDir, 'releases', OLDER, 'artifacts'))).map((f) => `artifacts/${f}`));
    expect(copied.size).toBeGreaterThan(3);
    expect(copied).toEqual(shown);
    expect(copied.has('artifacts/grad-cam/cat-01/0-overlay.png')).toBe(true);
    expect(copied.has('artifacts/summary.html')).toBe(false);
  });

  it('keeps the previous site whole when a build fails', async () => {
    const before = await readFile(join(siteDir, 'index.html'), 'utf8');
    await unlink(join(outputDir, 'releases', RELEASE, 'saliency/cat-01.png'));
    const err = await buildSite({ outputDir, release: RELEASE, base: '/', logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as ConvlensError).message).toContain('saliency/cat-01.png');
    expect((err as ConvlensError).hint).toBeTruthy();
    expect(await readFile(join(siteDir, 'index.html'), 'utf8')).toBe(before);
    expect((await readdir(outputDir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(process.env.CONVLENS_RELEASE).toBeUndefined();
  }, 120_000);

  it('refuses a missing release with a hint', async () => {
    const err = await buildSite({ outputDir, release: 'nope', base: '/', logger }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    expect((err as ConvlensError).hint).toMatch(/convlens report/);
    expect(existsSync(join(siteDir, 'index.html'))).toBe(true);
  });
});
