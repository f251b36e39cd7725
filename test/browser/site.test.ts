import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../pipeline/logger.ts';
import { saveLayersModel } from '../../pipeline/model/io.ts';
import { runReport } from '../../pipeline/run.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';
import { serveStatic, type StaticServer } from '../../pipeline/preview.ts';

/**
 * The report as a reader gets it: a tiny model project run through the whole pipeline twice (two
 * releases, the second with other weights), the site served under a GitHub-Pages-like base path
 * from a local static server, and every page visited in Debian's Chromium (playwright-core).
 * Screenshots go to output/screenshots/ (git-ignored; CI keeps them as artifacts).
 */
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  console.warn(`skipping the browser tests: ${CHROMIUM} is absent (install Debian's chromium: apt-get install -y chromium)`);
}

const BASE = '/convlens-demo/';
const HOSTILE = '<img src=x onerror=alert(1)>';
const CLASSES = ['circle', 'square', HOSTILE];
const SHOTS = resolve(import.meta.dirname, '../../output/screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let project: Awaited<ReturnType<typeof makeTinyProject>>;
let siteDir: string;
let server: StaticServer;
let browser: Browser;
let context: BrowserContext;

/** 30 labelled 16x16 dataset images, 10 per class (the third class folder is the hostile name). */
async function writeDataset(dir: string): Promise<void> {
  for (let i = 0; i < 30; i++) {
    const c = i % 3;
    const folder = join(dir, 'dataset', CLASSES[c]);
    await mkdir(folder, { recursive: true });
    const px = Buffer.alloc(16 * 16 * 3);
    for (let q = 0; q < 256; q++) {
      const x = q % 16;
      const y = Math.floor(q / 16);
      const on = c === 0 ? (x - 8) ** 2 + (y - 8) ** 2 < 12 + i : c === 1 ? x > 3 + (i % 4) && x < 12 && y > 3 && y < 12 : (x + i) % 4 < 2;
      px.fill(on ? 230 : 20 + i, q * 3, q * 3 + 3);
    }
    await sharp(px, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(join(folder, `img-${i}.png`));
  }
}

/** The tiny project's architecture with other seeds: a second release with other predictions. */
async function replaceModel(dir: string): Promise<void> {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: init(11) }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv2', kernelInitializer: init(12) }),
      tf.layers.globalAveragePooling2d({ name: 'gap' }),
      tf.layers.dense({ units: CLASSES.length, activation: 'softmax', name: 'predictions', kernelInitializer: init(13), biasInitializer: tf.initializers.constant({ value: 0.3 }) }),
    ],
  });
  await saveLayersModel(model, join(dir, 'model'));
  model.dispose();
}

interface Problems {
  console: string[];
  failed: string[];
  dialogs: string[];
}

function watch(page: Page): Problems {
  const p: Problems = { console: [], failed: [], dialogs: [] };
  page.on('console', (m) => {
    // Chromium probes <origin>/favicon.ico for documents that declare no icon (an image opened
    // by itself); that is outside the site's base, and every page of the site declares its icon
    if (m.type() === 'error' && new URL(m.location().url || page.url()).pathname !== '/favicon.ico') {
      p.console.push(`${page.url()}: ${m.text()}${m.location().url ? ` [${m.location().url}]` : ''}`);
    }
  });
  page.on('pageerror', (e) => p.console.push(`${page.url()}: ${e.message}`));
  page.on('requestfailed', (r) => p.failed.push(`${r.url()} (${r.failure()?.errorText})`));
  page.on('response', (r) => {
    if (r.status() >= 400) p.failed.push(`${r.url()} -> ${r.status()}`);
  });
  page.on('dialog', (d) => {
    p.dialogs.push(`${page.url()}: ${d.type()} ${d.message()}`);
    void d.dismiss();
  });
  return p;
}

/** Loads every img (lazy ones too) and returns those that do not decode or are empty. */
async function brokenImages(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const imgs = [...document.images];
    for (const img of imgs) img.loading = 'eager';
    const results = await Promise.all(imgs.map((img) => (img.getAttribute('src') ? img.decode().then(() => true, () => false) : Promise.resolve(false))));
    return imgs.filter((img, i) => !results[i] || img.naturalWidth === 0).map((img) => img.getAttribute('src') ?? '(no src)');
  });
}

function shotName(url: string): string {
  const path = new URL(url).pathname.slice(BASE.length).replace(/index\.html$/, '');
  return (path.replace(/[^a-z0-9]+/gi, '-').replace(/^-+|-+$/g, '') || 'overview').toLowerCase();
}

async function screenshot(page: Page, name: string): Promise<void> {
  await mkdir(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

describe.skipIf(!haveChromium)('the report site in Chromium', () => {
  beforeAll(async () => {
    project = await makeTinyProject({ classNames: CLASSES });
    await writeDataset(project.dir);
    const yaml = await readFile(project.config, 'utf8');
    await writeFile(project.config, yaml.replace('  dataset:\n    folder: images', '  dataset:\n    folder: dataset'));
    const logger = new MemoryLogger();
    await runReport({ configFile: project.config, release: 'r1', site: false, logger });
    await replaceModel(project.dir);
    const r2 = await runReport({ configFile: project.config, release: 'r2', base: BASE, logger });
    siteDir = r2.siteDir!;
    server = await serveStatic(siteDir, BASE);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  }, 600_000);

  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await server?.close();
    if (project) await rm(project.dir, { recursive: true, force: true });
  });

  it('visits every page: no console errors, no failed requests, no dialogs, every image decodes and has alt text', async () => {
    const page = await context.newPage();
    const problems = watch(page);
    const queue = [server.url];
    const seen = new Set<string>(queue);
    const broken: string[] = [];
    const noAlt: string[] = [];
    while (queue.length > 0) {
      const url = queue.shift()!;
      const response = await page.goto(url, { waitUntil: 'load' });
      expect(response?.status(), url).toBe(200);
      broken.push(...(await brokenImages(page)).map((s) => `${url}: ${s}`));
      noAlt.push(...(await page.evaluate(() => [...document.images]
        .filter((img) => !img.hasAttribute('alt') || (!img.alt.trim() && !/stack-(base|heat)/.test(img.className)))
        .map((img) => img.getAttribute('src') ?? ''))).map((s) => `${url}: ${s}`));
      await page.waitForLoadState('networkidle');
      await screenshot(page, shotName(url));
      const links = await page.evaluate(() => [...document.querySelectorAll('a[href]')].map((a) => (a as HTMLAnchorElement).href));
      for (const link of links) {
        const u = new URL(link);
        u.hash = '';
        const target = u.href;
        if (!target.startsWith(server.url) || seen.has(target)) continue;
        if (/\/artifacts\//.test(u.pathname) || !/(\/|\.html)$/.test(u.pathname)) continue;
        seen.add(target);
        queue.push(target);
      }
    }
    await page.close();
    const visited = [...seen].map((u) => u.slice(server.url.length));
    expect(visited).toEqual(expect.arrayContaining([
      '', 'samples/circle-circle-1/index.html', 'layers/index.html', 'layers/conv1/index.html', 'classes/index.html',
      'classes/2/index.html', 'embedding/index.html', 'releases/index.html', 'releases/r1/index.html', 'filters/index.html',
    ]));
    expect(problems.console).toEqual([]);
    expect(problems.failed).toEqual([]);
    expect(problems.dialogs).toEqual([]);
    expect(broken).toEqual([]);
    expect(noAlt).toEqual([]);
  }, 300_000);

  it('draws the embedding scatter, shows a thumbnail on hover, filters the misclassified, zooms with the wheel', async () => {
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${server.url}embedding/index.html`, { waitUntil: 'load' });
    await page.waitForFunction(() => (window as unknown as { convlensScatters?: unknown[] }).convlensScatters?.length === 1);
    await page.waitForTimeout(100);
    const drawn = await page.evaluate(() => {
      const canvas = document.querySelector('.scatter canvas') as HTMLCanvasElement;
      const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
      return n;
    });
    expect(drawn).toBeGreaterThan(100);
    expect(await page.locator('[data-scatter-static]').isHidden()).toBe(true);

    // the point's position from the data, through the plot's own transform
    const points = await page.evaluate(() => JSON.parse(document.querySelector('[data-scatter]')!.getAttribute('data-scatter')!) as { n: number; x: number[]; y: number[]; labels: string[]; label: number[] });
    expect(points.n).toBe(30);
    // every point's thumbnail is served: a failure below is the page's doing, not a missing file
    const thumbs = await page.evaluate(() => {
      const d = JSON.parse(document.querySelector('[data-scatter]')!.getAttribute('data-scatter')!) as { thumb: { prefix: string; suffix: string; mid: (string | null)[] } };
      return d.thumb.mid.map((m) => (m === null ? '' : new URL(d.thumb.prefix + m + d.thumb.suffix, document.baseURI).href));
    });
    expect(thumbs.filter((u) => !u)).toEqual([]);
    const statuses = await Promise.all(thumbs.map(async (u) => `${u} -> ${(await fetch(u, { method: 'HEAD' })).status}`));
    expect(statuses.filter((s) => !s.endsWith('-> 200'))).toEqual([]);
    const at = (i: number) => page.evaluate((j) => (window as unknown as { convlensScatters: { toClient(i: number): { x: number; y: number } }[] }).convlensScatters[0].toClient(j), i);
    const target = points.x.findIndex((_, i) => points.labels[points.label[i]] === HOSTILE);
    expect(target).toBeGreaterThanOrEqual(0);
    const p = await at(target);
    await page.mouse.move(p.x, p.y);
    const tip = page.locator('.scatter-tip');
    await expect.poll(() => tip.isVisible()).toBe(true);
    await page.waitForFunction(() => {
      const img = document.querySelector('.scatter-tip img') as HTMLImageElement | null;
      return img !== null && !img.hidden && img.complete && img.naturalWidth > 0;
    });
    const text = await tip.innerText();
    expect(text).toContain(`label: ${HOSTILE}`);
    expect(text).toMatch(/prediction: /);
    await screenshot(page, 'embedding-hover');

    // only misclassified: the count is shown and the plot still draws them
    await page.locator('[data-only-wrong]').check();
    await expect.poll(() => page.locator('[data-count]').innerText()).toMatch(/^\d+ of 30 labelled images misclassified; showing only those$/);
    // colour by prediction swaps the legend
    await page.locator('[data-color-by]').selectOption('prediction');
    expect(await page.locator('[data-legend="prediction"]').isVisible()).toBe(true);
    expect(await page.locator('[data-legend="label"]').isHidden()).toBe(true);
    await page.locator('[data-only-wrong]').uncheck();

    // the wheel zooms about the pointer: the point under it stays, others move away
    const q = await at(target === 0 ? 1 : 0);
    await page.mouse.move(p.x, p.y);
    await page.mouse.wheel(0, -400);
    await page.waitForTimeout(100);
    const p2 = await at(target);
    const q2 = await at(target === 0 ? 1 : 0);
    expect(Math.hypot(p2.x - p.x, p2.y - p.y)).toBeLessThan(2);
    expect(Math.hypot(q2.x - p2.x, q2.y - p2.y)).toBeGreaterThan(Math.hypot(q.x - p.x, q.y - p.y) + 1);
    await screenshot(page, 'embedding-zoomed');

    // a click opens the image
    await page.mouse.move(p2.x, p2.y);
    await Promise.all([page.waitForURL(/\/artifacts\/embedding\/thumbs\/.+\.png$/), page.mouse.click(p2.x, p2.y)]);
    expect(problems.console).toEqual([]);
    expect(problems.failed).toEqual([]);
    await page.close();
  }, 120_000);

  it('sample pages: the opacity slider sets every heatmap\'s opacity and tabs switch targets', async () => {
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${server.url}samples/circle-circle-1/index.html`, { waitUntil: 'load' });
    const slider = page.locator('input[data-heat-opacity]');
    await expect.poll(() => slider.isVisible()).toBe(true);
    expect(await page.locator('.stack.stacked').count()).toBeGreaterThan(5);
    await slider.evaluate((el: HTMLInputElement) => {
      el.value = '80';
      el.dispatchEvent(new Event('input', { bubbles: true }));
    });
    const opacity = await page.locator('.stack-heat').first().evaluate((el) => getComputedStyle(el).opacity);
    expect(Number(opacity)).toBeCloseTo(0.8, 5);
    expect(await page.locator('[data-heat-opacity-value]').innerText()).toBe('80 %');

    // the activation maps card has a tab per layer: switching shows the other layer's picture
    const card = page.locator('.xcard', { has: page.locator('.tab-label', { hasText: 'conv2' }) }).first();
    const panels = card.locator('.tab-panel');
    expect(await panels.nth(0).isVisible()).toBe(true);
    expect(await panels.nth(1).isVisible()).toBe(false);
    await card.locator('.tab-label', { hasText: 'conv2' }).click();
    expect(await panels.nth(1).isVisible()).toBe(true);
    expect(await panels.nth(0).isVisible()).toBe(false);
    // ... and with the keyboard: arrow keys move within the radio group
    await card.locator('.tab-radio').nth(1).focus();
    await page.keyboard.press('ArrowLeft');
    expect(await panels.nth(0).isVisible()).toBe(true);

    // the hostile class name is text, not markup
    await expect.poll(() => page.getByText(HOSTILE).first().isVisible()).toBe(true);
    expect(await page.locator('img[src="x"]').count()).toBe(0);
    await screenshot(page, 'sample-opacity-80');
    expect(problems.console).toEqual([]);
    expect(problems.failed).toEqual([]);
    expect(problems.dialogs).toEqual([]);
    await page.close();
  }, 120_000);

  it('the skip link is the first stop for the keyboard and moves focus to the content', async () => {
    const page = await context.newPage();
    await page.goto(`${server.url}index.html`, { waitUntil: 'load' });
    await page.keyboard.press('Tab');
    const skip = await page.evaluate(() => {
      const el = document.activeElement as HTMLElement;
      const r = el.getBoundingClientRect();
      return { text: el.textContent?.trim(), visible: r.left >= 0 && r.width > 0, outline: getComputedStyle(el).outlineStyle };
    });
    expect(skip.text).toBe('Skip to content');
    expect(skip.visible).toBe(true);
    await page.keyboard.press('Enter');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('content');
    await page.close();
  });

  it('works without JavaScript: precomputed overlays, CSS tabs, the static scatter', async () => {
    const noJs = await browser.newContext({ viewport: { width: 1280, height: 900 }, javaScriptEnabled: false });
    const page = await noJs.newPage();
    const problems = watch(page);
    await page.goto(`${server.url}samples/circle-circle-1/index.html`, { waitUntil: 'load' });
    expect(await page.locator('[data-heat-controls]').isHidden()).toBe(true);
    expect(await page.locator('.stack-heat').count()).toBe(0);
    const overlay = page.locator('img.stack-img[src*="grad-cam/circle-circle-1/"]').first();
    await overlay.scrollIntoViewIfNeeded();
    await expect.poll(() => overlay.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    expect(await overlay.getAttribute('src')).toMatch(/overlay\.png$/);
    const card = page.locator('.xcard', { has: page.locator('.tab-label', { hasText: 'conv2' }) }).first();
    await card.locator('.tab-label', { hasText: 'conv2' }).click();
    expect(await card.locator('.tab-panel').nth(1).isVisible()).toBe(true);
    await screenshot(page, 'no-js-sample');

    await page.goto(`${server.url}embedding/index.html`, { waitUntil: 'load' });
    const still = page.locator('[data-scatter-static] img');
    expect(await still.isVisible()).toBe(true);
    await expect.poll(() => still.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth > 0)).toBe(true);
    expect(await page.locator('[data-scatter]').isHidden()).toBe(true);
    await page.locator('details.wrong summary').click();
    expect(await page.locator('details.wrong img').count()).toBeGreaterThan(0);
    await screenshot(page, 'no-js-embedding');
    expect(problems.failed).toEqual([]);
    await noJs.close();
  }, 120_000);

  it('the compare page shows the two releases side by side', async () => {
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(`${server.url}releases/r1/index.html`, { waitUntil: 'load' });
    expect(await page.locator('h1').innerText()).toBe('r2 vs r1');
    expect(await brokenImages(page)).toEqual([]);
    const fromR1 = await page.locator('img[src*="releases/r1/artifacts/"]').count();
    const fromR2 = await page.locator('img[src^="../../artifacts/"]').count();
    expect(fromR1).toBeGreaterThan(10);
    expect(fromR2).toBeGreaterThan(10);
    const pairs = page.locator('.pair').first();
    expect(await pairs.locator('.pair-label').allInnerTexts()).toEqual([expect.stringMatching(/^r2/), expect.stringMatching(/^r1/)]);
    // r2 was built after replaceModel: the differences table says the weights changed
    expect(await page.locator('table.diff').innerText()).toMatch(/Weights\s+sha256 [0-9a-f]{12}\s+sha256 [0-9a-f]{12}/);
    expect(await page.locator('table:not(.diff)').first().innerText()).toMatch(/pp/);
    await screenshot(page, 'compare-loaded');
    expect(problems.console).toEqual([]);
    expect(problems.failed).toEqual([]);

    await page.goto(`${server.url}releases/index.html`, { waitUntil: 'load' });
    const rows = await page.locator('table.releases tbody th').allInnerTexts();
    expect(rows.map((r) => r.split(/\s/)[0])).toEqual(['r2', 'r1']);
    await page.close();
  }, 120_000);

  it('works opened from disk (file://): links resolve, scripts run, images load', async () => {
    const page = await context.newPage();
    const problems = watch(page);
    await page.goto(pathToFileURL(join(siteDir, 'index.html')).href, { waitUntil: 'load' });
    await Promise.all([page.waitForURL(/embedding\/index\.html$/), page.locator('.site-nav a', { hasText: 'Embedding' }).click()]);
    await page.waitForFunction(() => (window as unknown as { convlensScatters?: unknown[] }).convlensScatters?.length === 1);
    await page.goto(pathToFileURL(join(siteDir, 'samples', 'circle-circle-1', 'index.html')).href, { waitUntil: 'load' });
    await expect.poll(() => page.locator('.stack.stacked').count()).toBeGreaterThan(5);
    expect(await brokenImages(page)).toEqual([]);
    expect(problems.console).toEqual([]);
    expect(problems.failed).toEqual([]);
    await page.close();
  }, 60_000);

  it('fits a narrow screen (390 px): no page is wider than the viewport, wide tables scroll in their own box', async () => {
    const narrow = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 1 });
    const page = await narrow.newPage();
    const problems = watch(page);
    const pages = ['metrics/index.html', 'samples/circle-circle-1/index.html', 'index.html', 'layers/index.html', 'classes/index.html', 'embedding/index.html', 'releases/index.html', 'releases/r1/index.html'];
    const wide: string[] = [];
    for (const p of pages) {
      await page.goto(`${server.url}${p}`, { waitUntil: 'load' });
      await page.waitForLoadState('networkidle'); // leaving earlier would abort the scatter's thumbnail requests
      const { scrollWidth, innerWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth }));
      if (scrollWidth > innerWidth) wide.push(`${p}: ${scrollWidth} px wide in a ${innerWidth} px viewport`);
    }
    // the randomization table is there, wider than the screen, and scrolls inside its box
    await page.goto(`${server.url}metrics/index.html`, { waitUntil: 'load' });
    const box = page.locator('section[aria-labelledby="randomization"] .table-scroll');
    expect(await box.count()).toBe(1);
    const fit = await box.evaluate((el) => ({ scroll: el.scrollWidth, client: el.clientWidth, right: el.getBoundingClientRect().right, overflow: getComputedStyle(el).overflowX }));
    expect(fit.overflow).toBe('auto');
    expect(fit.scroll).toBeGreaterThan(fit.client);
    expect(fit.right).toBeLessThanOrEqual(390);
    await screenshot(page, 'narrow-metrics');
    await page.goto(`${server.url}samples/circle-circle-1/index.html`, { waitUntil: 'load' });
    await screenshot(page, 'narrow-sample');
    expect(wide).toEqual([]);
    expect(problems.console).toEqual([]);
    expect(problems.failed).toEqual([]);
    await narrow.close();
  }, 120_000);

  it('prints every picture: under print media each img has loaded without any scrolling, with and without JavaScript', async () => {
    const pages = ['index.html', 'samples/circle-circle-1/index.html', 'metrics/index.html', 'classes/index.html', 'classes/2/index.html', 'embedding/index.html', 'layers/conv1/index.html', 'releases/r1/index.html'];
    /** The imgs with a src that have not loaded (naturalWidth 0), in document order. */
    const empty = (page: Page) => page.evaluate(() => [...document.querySelectorAll('img[src]')]
      .filter((img) => !(img as HTMLImageElement).complete || (img as HTMLImageElement).naturalWidth === 0)
      .map((img) => img.getAttribute('src') ?? ''));
    for (const javaScriptEnabled of [true, false]) {
      // a short viewport and no scrolling: most pictures lie below it. Chromium loads lazy images
      // some distance below the viewport anyway, so on these short pages the test also requires
      // that no image is left lazy (where a long page would print it empty)
      const ctx = await browser.newContext({ viewport: { width: 1024, height: 400 }, javaScriptEnabled });
      const page = await ctx.newPage();
      const problems = watch(page);
      for (const p of pages) {
        await page.goto(`${server.url}${p}`, { waitUntil: 'load' });
        await page.emulateMedia({ media: 'print' });
        expect(await page.evaluate(() => window.scrollY)).toBe(0);
        const lazy = () => page.evaluate(() => document.querySelectorAll('img[loading="lazy"]').length);
        const where = `${p} (JavaScript ${javaScriptEnabled ? 'on' : 'off'})`;
        if (javaScriptEnabled) {
          // no image is left lazy: pages load theirs eagerly, and public/js/eager.js switches the
          // long lists of the classes and embedding pages to eager once the page has loaded
          await expect.poll(lazy, { timeout: 10_000, message: where }).toBe(0);
        } else if (await lazy() > 0) {
          // without JavaScript only those long lists stay lazy (they load as the reader scrolls)
          expect(p, `lazy images on ${where}`).toMatch(/^(classes|embedding)\/index\.html$/);
          // let the page finish loading (its icon, say) before the next goto aborts the requests
          await page.waitForLoadState('networkidle');
          await page.emulateMedia({ media: 'screen' });
          continue;
        }
        await expect.poll(() => empty(page), { timeout: 10_000, message: where }).toEqual([]);
        await page.waitForLoadState('networkidle');
        await page.emulateMedia({ media: 'screen' });
      }
      await page.goto(`${server.url}samples/circle-circle-1/index.html`, { waitUntil: 'load' });
      await page.emulateMedia({ media: 'print' });
      await page.screenshot({ path: join(SHOTS, `print-sample${javaScriptEnabled ? '' : '-no-js'}.png`), fullPage: true });
      expect(await empty(page)).toEqual([]);
      expect(problems.failed).toEqual([]);
      if (javaScriptEnabled) expect(problems.console).toEqual([]);
      await ctx.close();
    }
  }, 180_000);

  it('summary.html shows all its images with no network at all', async () => {
    const offline = await browser.newContext({ offline: true });
    const page = await offline.newPage();
    const file = join(siteDir, 'artifacts', 'summary.html');
    const fileUrl = pathToFileURL(file).href;
    const requests: string[] = [];
    await page.route('**', (route) => (route.request().url() === fileUrl ? route.continue() : route.abort()));
    page.on('request', (r) => requests.push(r.url()));
    await page.goto(fileUrl, { waitUntil: 'load' });
    const images = await page.evaluate(() => [...document.images].map((img) => ({ ok: img.complete && img.naturalWidth > 0, data: img.src.startsWith('data:'), natural: img.naturalWidth, shown: img.width })));
    expect(images.length).toBeGreaterThan(10);
    expect(images.every((i) => i.ok && i.data)).toBe(true);
    // display-size copies: never more pixels than the summary shows (small ones are enlarged, pixelated)
    expect(images.filter((i) => i.natural > i.shown)).toEqual([]);
    expect(requests.filter((u) => u !== fileUrl && !u.startsWith('data:'))).toEqual([]);
    await screenshot(page, 'summary-offline');
    await offline.close();
  }, 60_000);
});
