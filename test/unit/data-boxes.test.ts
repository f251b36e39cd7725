/**
 * Bounding boxes in sample lists (for the pointing game): CSV and JSON forms, errors, and the
 * mapping from original pixels to the model input for each resize mode, checked against the
 * pixels `preprocessImage` actually produces.
 */
import sharp from 'sharp';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { boxToInput, listImages, parseBox, preprocessImage, type ListContext, type Preprocessing } from '../../pipeline/data.ts';
import { ConvlensError } from '../../pipeline/errors.ts';

let tmp: string;
const ctx = (): ListContext => ({ config: { dir: tmp, file: join(tmp, 'viz.yaml') }, key: 'data.samples' });
const pre = (p: Partial<Preprocessing>): Preprocessing => ({ size: [16, 16], channels: 3, channelOrder: 'rgb', scale: 1, mean: [0], std: [1], resize: 'fill', ...p });

async function png(path: string, w: number, h: number, px: (x: number, y: number) => number[]) {
  const buf = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) buf.set(px(x, y), (y * w + x) * 3);
  await sharp(buf, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
  return path;
}

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'convlens-boxes-'));
  await mkdir(join(tmp, 'img'));
  await png(join(tmp, 'img/a.png'), 4, 4, () => [9, 9, 9]);
  await png(join(tmp, 'img/b.png'), 4, 4, () => [9, 9, 9]);
});
afterAll(async () => { await rm(tmp, { recursive: true, force: true }); });

async function rejection(p: Promise<unknown>): Promise<ConvlensError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(ConvlensError);
  return err as ConvlensError;
}

describe('boxes in lists', () => {
  it('CSV: a quoted box column by header, four corner columns, or positional', async () => {
    await writeFile(join(tmp, 'h.csv'), 'path,label,box\nimg/a.png,0,"1,2,3,4"\nimg/b.png,1,\n');
    const h = await listImages({ list: 'h.csv' }, ctx());
    expect(h.map((r) => r.box)).toEqual([[1, 2, 3, 4], undefined]);
    await writeFile(join(tmp, 'c.csv'), 'xmin,ymin,xmax,ymax,file\n0.5,1,2.5,3,img/a.png\n');
    expect((await listImages({ list: 'c.csv' }, ctx()))[0].box).toEqual([0.5, 1, 2.5, 3]);
    await writeFile(join(tmp, 'p.csv'), 'img/a.png,0,"1 2 3 4"\nimg/b.png,,0,0,4,4\n');
    expect((await listImages({ list: 'p.csv' }, ctx())).map((r) => r.box)).toEqual([[1, 2, 3, 4], [0, 0, 4, 4]]);
  });

  it('JSON: box as an array or a string; null means none', async () => {
    await writeFile(join(tmp, 'j.json'), JSON.stringify([{ path: 'img/a.png', box: [0, 1, 2, 3] }, { path: 'img/b.png', box: '[1, 1, 3, 3]' }, { path: 'img/a.png', box: null }]));
    expect((await listImages({ list: 'j.json' }, ctx())).map((r) => r.box)).toEqual([[0, 1, 2, 3], [1, 1, 3, 3], undefined]);
  });

  it('bad boxes are errors naming the file, the row and the problem', async () => {
    await writeFile(join(tmp, 'bad.csv'), 'path,box\nimg/a.png,"1,2,3"\n');
    const e1 = await rejection(listImages({ list: 'bad.csv' }, ctx()));
    expect(e1.message).toBe('viz.yaml: data.samples.list: bad.csv line 2: box must be four numbers x0,y0,x1,y1, got "1,2,3"');
    expect(e1.hint).toMatch(/original image's pixels/);
    await writeFile(join(tmp, 'bad.json'), JSON.stringify([{ path: 'img/a.png', box: [3, 0, 1, 2] }]));
    const e2 = await rejection(listImages({ list: 'bad.json' }, ctx()));
    expect(e2.message).toBe('viz.yaml: data.samples.list: bad.json item 1: box [3,0,1,2] is empty: it needs x0 < x1 and y0 < y1');
    expect(() => parseBox([-1, 0, 2, 2])).toThrow(/negative/);
    expect(parseBox('')).toBeUndefined();
  });
});

describe('boxToInput', () => {
  // 96x32 stripes: green x < 32, red 32..64, blue >= 64 (as in data.test.ts)
  const G = [0, 255, 0];
  const R = [255, 0, 0];
  const B = [0, 0, 255];
  let stripes: string;
  const original = { width: 96, height: 32 };
  beforeAll(async () => {
    stripes = await png(join(tmp, 'stripes.png'), 96, 32, (x) => (x < 32 ? G : x < 64 ? R : B));
  });
  const at = (d: Uint8Array, x: number, y: number) => Array.from(d.subarray((y * 16 + x) * 3, (y * 16 + x) * 3 + 3));

  it('fill scales each axis', () => {
    expect(boxToInput([32, 0, 64, 32], original, pre({ resize: 'fill' }))).toEqual([16 / 3, 0, 32 / 3, 16]);
    expect(boxToInput([0, 8, 48, 24], original, pre({ resize: 'fill', size: [8, 24] }))).toEqual([0, 2, 12, 6]);
  });

  it('contain: the image is 16x5 at rows 5..9 (as preprocessImage puts it)', async () => {
    const box = boxToInput([0, 0, 96, 32], original, pre({ resize: 'contain' }))!;
    expect(box).toEqual([0, 5, 16, 10]);
    const { display } = await preprocessImage(stripes, pre({ resize: 'contain' }));
    for (let x = 0; x < 16; x++) {
      expect(at(display, x, 4)).toEqual([0, 0, 0]);
      expect(at(display, x, 10)).toEqual([0, 0, 0]);
      expect(at(display, x, 5)).not.toEqual([0, 0, 0]);
      expect(at(display, x, 9)).not.toEqual([0, 0, 0]);
    }
  });

  it('cover: 48x16 cropped at x 16; the red stripe fills the input, the green one is cut away', async () => {
    expect(boxToInput([32, 0, 64, 32], original, pre({ resize: 'cover' }))).toEqual([0, 0, 16, 16]);
    expect(boxToInput([0, 0, 32, 16], original, pre({ resize: 'cover' }))).toBeUndefined();
    expect(boxToInput([60, 8, 80, 24], original, pre({ resize: 'cover' }))).toEqual([14, 4, 16, 12]);
    const { display } = await preprocessImage(stripes, pre({ resize: 'cover' }));
    for (let x = 3; x <= 12; x++) expect(at(display, x, 8)).toEqual(R);
  });
});
