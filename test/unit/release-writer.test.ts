import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReleaseWriter } from '../../pipeline/release-writer.ts';

const img = { pixels: new Uint8Array(4 * 3), width: 2, height: 2, channels: 3 as const };

describe('ReleaseWriter', () => {
  it('gives names that slug() folds together distinct paths instead of overwriting', async () => {
    const w = new ReleaseWriter(await mkdtemp(join(tmpdir(), 'convlens-rw-')), 'r', 'png');
    await w.open();
    const a = await w.image('layers', 'Conv:0', { id: 'a', method: 'm', title: 'a' }, img, { data: Float32Array.from([1, 2, 3, 4]), shape: [2, 2] });
    const b = await w.image('layers', 'conv-0', { id: 'b', method: 'm', title: 'b' }, img, { data: Float32Array.from([5, 6, 7, 8]), shape: [2, 2] });
    const c = await w.data('layers', 'CONV 0', { id: 'c', method: 'm', title: 'c' }, { v: 1 });
    expect([a.path, a.raw!.path]).toEqual(['layers/conv-0.png', 'layers/conv-0.npy']);
    expect([b.path, b.raw!.path]).toEqual(['layers/conv-0-2.png', 'layers/conv-0-2.npy']);
    expect(c.path).toBe('layers/conv-0.json');
    expect(JSON.parse(await readFile(join(w.staging, c.path), 'utf8'))).toEqual({ v: 1 });
    await w.abort();
  });

  it('keeps non-finite stats as text, so the manifest (finite numbers only) still validates', async () => {
    const w = new ReleaseWriter(await mkdtemp(join(tmpdir(), 'convlens-rw-')), 'r', 'png');
    await w.open();
    const a = await w.image('m', 'x', { id: 'x', method: 'm', title: 'x', stats: { min: Infinity, max: -Infinity, mean: NaN, n: 3, ok: true } }, img);
    expect(a.stats).toEqual({ min: 'Infinity', max: '-Infinity', mean: 'NaN', n: 3, ok: true });
    await w.abort();
  });
});
