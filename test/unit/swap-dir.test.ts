import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { swapDir } from '../../pipeline/fs-atomic.ts';

describe('swapDir', () => {
  it('replaces the folder and removes the old one; creates it when absent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-swap-'));
    for (const [name, text] of [['target', 'old'], ['fresh', 'new']]) {
      await mkdir(join(dir, name));
      await writeFile(join(dir, name, 'f.txt'), text);
    }
    await swapDir(join(dir, 'fresh'), join(dir, 'target'));
    expect(await readFile(join(dir, 'target', 'f.txt'), 'utf8')).toBe('new');
    expect(await readdir(dir)).toEqual(['target']);
    await mkdir(join(dir, 'fresh2'));
    await swapDir(join(dir, 'fresh2'), join(dir, 'other'));
    expect((await readdir(dir)).sort()).toEqual(['other', 'target']);
  });

  it('puts the old folder back when the fresh one cannot take its place', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'convlens-swap-'));
    await mkdir(join(dir, 'target'));
    await writeFile(join(dir, 'target', 'f.txt'), 'old');
    await expect(swapDir(join(dir, 'missing'), join(dir, 'target'))).rejects.toThrow(/ENOENT/);
    expect(await readFile(join(dir, 'target', 'f.txt'), 'utf8')).toBe('old');
    expect(await readdir(dir)).toEqual(['target']);
  });
});
