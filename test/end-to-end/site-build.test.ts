import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConvlensError } from '../../pipeline/errors.ts';
import { MemoryLogger } from '../../pipeline/logger.ts';
import type { Manifest } from '../../pipeline/manifest.ts';
import { buildSite } from '../../pipeline/site.ts';
import { FIXTURE_PARAMS, HOSTILE_CLASS, makeFixtureRelease } from '../fixtures/make-manifest.ts';

/**
 * Builds the real site (Astro, no mocks) for the synthetic fixture release into a temp folder,
 * served under a non-root base, and checks it as a reader would get it from disk (file://).
 */
const RELEASE = 'fixture-1';
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

function decodeEntities(s: string): string {
  return s
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function attributes(html: string, name: string): string[] {
  const body = html.replace(/<style[\s\S]*?<\/style>/gi, '');
  return [...body.matchAll(new RegExp(`\\s${name}="([^"]*)"`, 'g'))].map((m) => decodeEntities(m[1]));
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'convlens-site-'));
  outputDir = join(work, 'output');
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
      'methods/model-summary/index.html',
      'methods/class-model/index.html',
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
    }
    const copied = (await listFiles(join(siteDir, 'artifacts'))).sort();
    expect(copied).toEqual([...listed].sort());
    for (const f of copied) {
      const [a, b] = await Promise.all([readFile(join(siteDir, 'artifacts', f)), readFile(join(outputDir, 'releases', RELEASE, f))]);
      expect(a.equals(b), f).toBe(true);
    }
    const top = (await readdir(siteDir)).sort();
    expect(top).toEqual(['artifacts', 'filters', 'index.html', 'methods', 'samples']);
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

  it('gives every image alt text, lazy loading and a size; small pictures are pixelated', () => {
    for (const [page, html] of pages) {
      for (const tag of html.match(/<img\b[^>]*>/g) ?? []) {
        expect(tag, page).toMatch(/\salt="[^"]+"/);
        expect(tag, page).toContain('loading="lazy"');
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
