import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLogger } from '../../pipeline/logger.ts';
import { type Manifest, parseManifest } from '../../pipeline/manifest.ts';
import { curvesSvg, rasterize } from '../../pipeline/metrics/chart.ts';
import { markBest } from '../../pipeline/metrics/table.ts';
import type { MetricsJson } from '../../pipeline/metrics/types.ts';
import { encodeImage } from '../../pipeline/render.ts';
import { buildSite } from '../../pipeline/site.ts';
import { makeFixtureRelease } from '../fixtures/make-manifest.ts';

/**
 * The metrics page (src/pages/metrics/[...page].astro) on the fixture release plus a metrics
 * artifact: the page exists, shows the table with the best values and the baseline, puts the
 * flags first, escapes model-supplied titles and links only to files that exist.
 */
const RELEASE = 'fixture-metrics';
const HOSTILE = '<script>alert(1)</script>';
let work: string;
let html: string;
let siteDir: string;

function metricsJson(): MetricsJson {
  const curve = (v: number) => [1, v, 0];
  const entry = (method: string, v: number) => ({ method, class: 0, auc: v, curve: curve(v) });
  const samples = ['cat-01', 'dog-02'].map((id) => ({ id, methods: [entry('grad-cam', 0.2), entry('saliency', 0.4), entry('random', 0.3), entry('random-7x7', 0.5)] }));
  const mean = ['grad-cam', 'saliency', 'random', 'random-7x7'].map((m, i) => ({ method: m, auc: [0.2, 0.4, 0.3, 0.5][i], curve: curve(0.3), samples: 2 }));
  const row = (method: string, title: string, v: Partial<MetricsJson['table'][number]>) => ({
    method, title, baseline: false, deletion: null, insertion: null, randomization: null, pointing: null, flagged: false, warned: false, best: [], ...v,
  });
  return {
    version: 1,
    samples: [{ id: 'cat-01', source: 'cat 01.jpg' }, { id: 'dog-02', source: 'dog 02.jpg' }],
    methods: [
      { id: 'grad-cam', title: 'Grad-CAM', against: 'random-7x7' }, { id: 'saliency', title: HOSTILE, against: 'random' },
      { id: 'random', title: 'Random (per pixel)', baseline: true, grid: [32, 32] }, { id: 'random-7x7', title: 'Random (7×7 grid)', baseline: true, grid: [7, 7] },
    ],
    table: markBest([
      row('grad-cam', 'Grad-CAM', { deletion: 0.2, insertion: 0.7, randomization: 0.05, against: 'random-7x7', beats: { deletion: true, insertion: true } }),
      row('saliency', HOSTILE, { deletion: 0.4, insertion: 0.3, randomization: 0.91, flagged: true, against: 'random', beats: { deletion: false, insertion: true } }),
      row('random', 'Random (per pixel)', { baseline: true, deletion: 0.3, insertion: 0.1 }),
      row('random-7x7', 'Random (7×7 grid)', { baseline: true, deletion: 0.5, insertion: 0.2 }),
    ]),
    flags: [{ method: 'saliency', metric: 'randomization', severity: 'fail', message: 'its maps barely change when the model is randomized (0.91).' }],
    deletion: { steps: 2, pixelsPerStep: 512, fractions: [0, 0.5, 1], samples, mean, fill: { source: 'dataset', input: [0.4], images: 6 } },
    insertion: { steps: 2, pixelsPerStep: 512, fractions: [0, 0.5, 1], samples, mean, sigma: 5 },
    randomization: {
      seed: 0, threshold: 0.5, layers: ['dense_2', 'dense_1'],
      steps: [{ step: 1, layer: 'dense_2', randomized: 1 }, { step: 2, layer: 'conv2d_1', randomized: 4 }],
      methods: [
        { method: 'grad-cam', abs: [0.3, 0.05], signed: [0.3, 0.05], final: 0.05, flagged: false, insensitiveUpTo: 0, samples: [] },
        { method: 'saliency', abs: [0.97, 0.91], signed: [0.97, 0.91], final: 0.91, flagged: true, insensitiveUpTo: 4, samples: [] },
      ],
      skipped: [{ method: 'occlusion', passes: 226 }],
    },
  };
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'convlens-metrics-site-'));
  const outputDir = join(work, 'output');
  const { releaseDir, manifest } = await makeFixtureRelease(outputDir, RELEASE);
  const put = async (rel: string, data: Uint8Array | string) => {
    await mkdir(dirname(join(releaseDir, rel)), { recursive: true });
    await writeFile(join(releaseDir, rel), data);
  };
  const json = metricsJson();
  await put('metrics/metrics.json', JSON.stringify(json));
  const chart = await rasterize(curvesSvg('Mean curves', [{ title: 'Deletion', xLabel: 'x', yLabel: 'p', x: [0, 0.5, 1], lines: [{ label: 'Grad-CAM', values: [1, 0.2, 0] }] }], [{ label: 'Grad-CAM', detail: 'del 0.2' }]).svg);
  await put('metrics/mean-curves.png', await encodeImage(chart.pixels, chart.width, chart.height, 3, 'png'));
  await put('metrics/cat-01/curves.png', await encodeImage(chart.pixels, chart.width, chart.height, 3, 'png'));
  const artifacts: Manifest['artifacts'] = [
    { id: 'metrics/metrics', method: 'metrics', kind: 'data', path: 'metrics/metrics.json', title: 'Trust metrics' },
    { id: 'metrics/cat-01/curves', method: 'metrics', kind: 'image', path: 'metrics/cat-01/curves.png', title: 'Deletion and insertion curves', alt: 'curves of cat 01', image: 'cat-01', width: chart.width, height: chart.height },
    { id: 'metrics/mean-curves', method: 'metrics', kind: 'image', path: 'metrics/mean-curves.png', title: 'Mean deletion and insertion curves', alt: 'mean curves', width: chart.width, height: chart.height },
  ];
  await writeFile(join(releaseDir, 'manifest.json'), JSON.stringify(parseManifest({ ...manifest, artifacts: [...manifest.artifacts, ...artifacts] })));
  siteDir = (await buildSite({ outputDir, release: RELEASE, base: '/', logger: new MemoryLogger() })).siteDir;
  html = await readFile(join(siteDir, 'metrics/index.html'), 'utf8');
}, 120_000);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('metrics page', () => {
  it('shows the failed check before the table, the best values in bold, the baseline rows and which baseline each method loses to', () => {
    // without Astro's scoping attributes
    const text = html.replace(/<style[\s\S]*?<\/style>/g, '').replace(/ data-astro-cid-[a-z0-9]+/g, '');
    expect(text.indexOf('Failed the randomization sanity check')).toBeGreaterThan(0);
    expect(text.indexOf('Failed the randomization sanity check')).toBeLessThan(text.indexOf('id="summary"'));
    expect(text).toMatch(/<strong>0\.200 <span class="visually-hidden">\(best\)<\/span><\/strong>/);
    expect(text).toMatch(/<strong>0\.700 <span class="visually-hidden">\(best\)<\/span><\/strong>/);
    expect(text).toContain('<em>Random (per pixel)</em>');
    expect(text).toContain('<em>Random (7×7 grid)</em>');
    expect(text).toContain('<th scope="col">Compared with</th>');
    // the hostile-titled saliency row: compared with per-pixel noise, and no better on deletion
    const table = text.slice(text.indexOf('id="summary"'));
    const salRow = table.slice(table.indexOf('&lt;script&gt;alert(1)&lt;/script&gt;'));
    const cells = salRow.slice(0, salRow.indexOf('</tr>'));
    expect(cells).toContain('<td class="muted">Random (per pixel)</td>');
    expect(cells).toMatch(/0\.400\s*<span class="worse-mark" title="no better than Random \(per pixel\)">/);
    expect(cells.match(/worse-mark/g)).toHaveLength(1);
    expect(text).toContain('down to <code>conv2d_1</code>');
    expect(text).toMatch(/Not rerun, for their cost \(model passes per sample, at every cascade point\): occlusion \(226\)\.\s*List them in <code>metrics\.randomization\.methods<\/code>/);
  });

  it("shows each sample's scores on its page, with ✗ where a map does no better than its own baseline", async () => {
    const page = (await readFile(join(siteDir, 'samples/cat-01/index.html'), 'utf8')).replace(/ data-astro-cid-[a-z0-9]+/g, '');
    const table = page.slice(page.indexOf('Trust scores for this sample'));
    const rowOf = (title: string) => { const t = table.slice(table.indexOf(title)); return t.slice(0, t.indexOf('</tr>')); };
    // the fixture's curves give every method the same AUC for deletion and insertion: grad-cam 0.2
    // vs its 7x7 baseline's 0.5 is better on deletion (lower) and worse on insertion (higher is better)
    const gc = rowOf('Grad-CAM</th>');
    expect(gc).toMatch(/<td class="num">0\.200<\/td>/);
    expect(gc).toMatch(/0\.200<span class="sample-metrics-flag" title="no better than Random \(7×7 grid\)"> ✗<\/span>/);
    expect(gc.match(/✗/g)).toHaveLength(1);
    // saliency 0.4 vs per-pixel 0.3: worse on deletion
    expect(rowOf('&lt;script&gt;alert(1)&lt;/script&gt;')).toMatch(/0\.400<span class="sample-metrics-flag" title="no better than Random \(per pixel\)"> ✗<\/span>/);
    expect(rowOf('<em>Random (7×7 grid)</em>')).toContain('0.500');
  });

  it('escapes model-supplied titles', () => {
    expect(html).not.toContain(HOSTILE);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('links relatively, to files that exist', () => {
    const page = join(siteDir, 'metrics/index.html');
    const refs = [...html.matchAll(/\s(?:href|src)="([^"#]+)"/g)].map((m) => m[1]).filter((r) => !/^[a-z]+:/i.test(r));
    expect(refs.length).toBeGreaterThanOrEqual(4);
    for (const r of refs) {
      expect(r.startsWith('/')).toBe(false);
      expect(existsSync(resolve(dirname(page), decodeURIComponent(r))), r).toBe(true);
    }
  });
});
