/**
 * One validation pass before any work: a config with several mistakes of different kinds (method
 * options against the model, the labels, the data listing, the release name) names them all in
 * one error, and nothing is written.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { runReport } from '../../pipeline/run.ts';
import { makeTinyProject } from '../helpers/tiny-project.ts';

describe('validation before any work', () => {
  beforeAll(async () => { await initBackend('wasm', silentLogger); });

  it('reports every problem of the config at once, one line each, and writes nothing', async () => {
    const p = await makeTinyProject();
    await writeFile(join(p.dir, 'two-labels.txt'), 'circle\nsquare\n');
    await writeFile(p.config, [
      'release: fine',
      'model: { path: model, labels: two-labels.txt }',
      'data:',
      '  samples: { folder: no-such-folder }',
      '  dataset: { folder: images }',
      'compute: { backend: wasm }',
      'methods:',
      '  grad-cam: { layer: conv9 }',
      '  occlusion: { size: 2, stride: 3 }',
    ].join('\n'));
    // the release name from --release (the config's own is checked by its schema)
    const err = await runReport({ configFile: p.config, release: 'bad name!', logger: silentLogger, site: false }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConvlensError);
    const lines = (err as Error).message.split('\n');
    expect(lines).toEqual(expect.arrayContaining([
      'viz.yaml: release: release name "bad name!" is not usable as a folder name',
      'viz.yaml: model.labels: the labels file has 2 names but the model has 3 outputs; give one name per output, in output order',
      expect.stringMatching(/^viz\.yaml: methods\.grad-cam\.layer: no layer "conv9"; nearest: /),
      expect.stringMatching(/^viz\.yaml: methods\.occlusion\.stride: stride 3 is larger than the patch height 2/),
      expect.stringMatching(/^viz\.yaml: data\.samples\.folder: folder "no-such-folder" not found/),
    ]));
    expect(lines.every((l) => l.startsWith('viz.yaml: '))).toBe(true);
    expect((err as ConvlensError).hint).toMatch(/Use letters, digits/);
    expect(existsSync(join(p.outputDir, 'releases'))).toBe(false);
  }, 60_000);
});
