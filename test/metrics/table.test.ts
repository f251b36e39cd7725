import { describe, expect, it } from 'vitest';
import { markBest, metricsTableHtml, metricsTableMarkdown } from '../../pipeline/metrics/table.ts';
import type { MetricsJson, MetricsRow } from '../../pipeline/metrics/types.ts';

const row = (method: string, title: string, v: Partial<MetricsRow>): MetricsRow => ({
  method, title, baseline: false, deletion: null, insertion: null, randomization: null, pointing: null, flagged: false, warned: false, best: [], ...v,
});

function metrics(): MetricsJson {
  const curve = { steps: 2, pixelsPerStep: 2, fractions: [0, 0.5, 1], samples: [], mean: [] };
  return {
    version: 1,
    samples: [{ id: 'a', source: 'a.png' }],
    methods: [
      { id: 'grad-cam', title: 'Grad-CAM', against: 'random-4x4' }, { id: 'gb', title: 'Guided | backprop', against: 'random' }, { id: 'sal', title: 'Saliency', against: 'random' },
      { id: 'random', title: 'Random (per pixel)', baseline: true, grid: [16, 16] }, { id: 'random-4x4', title: 'Random (4×4 grid)', baseline: true, grid: [4, 4] },
    ],
    table: markBest([
      row('grad-cam', 'Grad-CAM', { deletion: 0.1, insertion: 0.5, randomization: -0.05, pointing: 0.75, against: 'random-4x4', beats: { deletion: true, insertion: true } }),
      row('gb', 'Guided | backprop', { deletion: 0.1, insertion: 0.6, randomization: 0.93, pointing: 0.5, flagged: true, against: 'random', beats: { deletion: false, insertion: true } }),
      row('sal', 'Saliency', { deletion: 0.2, insertion: 0.1, randomization: -0.3, pointing: 0.25, warned: true, against: 'random', beats: { deletion: false, insertion: false } }),
      row('random', 'Random (per pixel)', { baseline: true, deletion: 0.05, insertion: 0.3, randomization: null, pointing: 1 }),
      row('random-4x4', 'Random (4×4 grid)', { baseline: true, deletion: 0.3, insertion: 0.4, randomization: null, pointing: 0.5 }),
    ]),
    flags: [
      { method: 'gb', metric: 'randomization', severity: 'fail', message: 'its maps barely change (0.93).' },
      { method: 'sal', metric: 'randomization', severity: 'warn', message: 'insensitive to the top.' },
    ],
    deletion: { ...curve, fill: { source: 'dataset', input: [0.5], images: 10 } },
    insertion: { ...curve, sigma: 5 },
    randomization: { seed: 0, threshold: 0.5, layers: ['fc', 'c1'], steps: [{ step: 1, layer: 'fc', randomized: 1 }, { step: 2, layer: 'c1', randomized: 2 }], methods: [] },
    pointingGame: { tolerance: 15, boxes: [{ id: 'a', box: [0, 0, 1, 1] }], methods: [] },
  };
}

describe('metrics table', () => {
  it('marks the best value per column among methods (ties all; for ρ the closest to 0), never the baseline', () => {
    const t = metrics().table;
    expect(t.map((r) => r.best)).toEqual([['deletion', 'randomization', 'pointing'], ['deletion', 'insertion'], [], [], []]);
  });

  it('renders Markdown with arrows, bold best values, the flag, ✗ where a method loses to its baseline, baselines in italics and escaped titles', () => {
    expect(metricsTableMarkdown(metrics())).toBe([
      '| Method | Deletion AUC ↓ | Insertion AUC ↑ | Randomization ρ →0 | Pointing game ↑ |',
      '| --- | ---: | ---: | ---: | ---: |',
      '| Grad-CAM | **0.100** | 0.500 | **-0.050** | **75.0%** |',
      '| Guided \\| backprop ⚠ | **0.100** ✗ | **0.600** | 0.930 ⚠ | 50.0% |',
      '| Saliency ◐ | 0.200 ✗ | 0.100 ✗ | -0.300 ◐ | 25.0% |',
      '| *Random \\(per pixel\\)* | 0.050 | 0.300 | — | 100.0% |',
      '| *Random \\(4×4 grid\\)* | 0.300 | 0.400 | — | 50.0% |',
      '',
      '> **⚠ Guided \\| backprop:** its maps barely change \\(0.93\\).',
      '>',
      '> **◐ Saliency:** insensitive to the top.',
      '',
      "- Deletion: area under p\\(class\\) as the top-ranked pixels are replaced by the dataset's mean colour, 2 px per step \\(lower is better\\).",
      '- Insertion: area under p\\(class\\) as the top-ranked pixels are revealed on a blurred copy \\(σ = 5 px\\) \\(higher is better\\).',
      "- Random baselines: uniform noise on each map's own grid, upsampled like the maps, so a map is compared with chance at its own resolution \\(scattered single-pixel removals hurt a model more than any contiguous region\\); Grad-CAM: Random \\(4×4 grid\\), Guided \\| backprop: Random \\(per pixel\\), Saliency: Random \\(per pixel\\). ✗: a mean AUC no better than that baseline's.",
      '- Randomization: mean Spearman correlation ρ of \\|map\\| with the original map after re-initialising all 2 weighted layers from the top \\(closer to 0 is better; above 0.5 is flagged\\).',
      '- Pointing game: share of the 1 samples with a box whose map maximum lies in it \\(tolerance 15.0 px\\) \\(higher is better\\).',
      '',
    ].join('\n'));
  });

  it('leaves out metrics that did not run and says why the randomization test was skipped', () => {
    const m = metrics();
    delete m.insertion;
    m.pointingGame!.boxes = [];
    m.randomization = { ...m.randomization!, note: 'the model has no layers with weights', steps: [] };
    const md = metricsTableMarkdown(m);
    expect(md.split('\n')[0]).toBe('| Method | Deletion AUC ↓ |');
    expect(md).toContain('Randomization test: the model has no layers with weights.');
    expect(metricsTableMarkdown({})).toBe('');
  });

  it('renders the same as HTML, escaped', () => {
    const html = metricsTableHtml(metrics());
    expect(html).toContain('<th scope="row">Guided | backprop <strong title="failed the randomization sanity check">⚠</strong></th>');
    expect(html).toContain('<td class="num"><strong>0.600</strong></td>');
    expect(html).toContain('<th scope="row"><em>Random (4×4 grid)</em></th>');
    expect(html).toContain('<td class="num">0.200 <span title="no better than Random (per pixel)">✗</span></td>');
    const hostile = metrics();
    hostile.table[0].title = '<img src=x>';
    expect(metricsTableHtml(hostile)).toContain('&lt;img src=x&gt;');
  });
});
