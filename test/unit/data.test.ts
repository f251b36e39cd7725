import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import sharp from 'sharp';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  balancedCounts,
  batches,
  listImages,
  loadImages,
  naturalCompare,
  parseCsv,
  preprocessImage,
  readLabelsFile,
  resolvePreprocessing,
  slugify,
  uniqueIds,
  type DataSource,
  type ImageBatch,
  type ImageRef,
  type ListContext,
  type Preprocessing,
} from '../../pipeline/data.ts';
import { ConvlensError } from '../../pipeline/errors.ts';
import { MemoryLogger } from '../../pipeline/logger.ts';

let tmp: string;

type RGB = [number, number, number];

/** Writes a w*h PNG whose pixel (x, y) is `px(x, y)`; 3 or 4 channels. */
async function png(path: string, w: number, h: number, px: (x: number, y: number) => number[]): Promise<string> {
  const channels = px(0, 0).length as 3 | 4;
  const buf = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) buf.set(px(x, y), (y * w + x) * channels);
  await mkdir(join(path, '..'), { recursive: true });
  await sharp(buf, { raw: { width: w, height: h, channels } }).png().toFile(path);
  return path;
}

const solid = (path: string, c: RGB = [128, 128, 128]) => png(path, 2, 2, () => c);

function ctx(extra: Partial<ListContext> = {}): ListContext {
  return { config: { dir: tmp, file: join(tmp, 'viz.yaml') }, key: 'data.samples', ...extra };
}

const pre = (p: Partial<Preprocessing> = {}): Preprocessing => ({
  size: [2, 2], channels: 3, channelOrder: 'rgb', scale: 1, mean: [0], std: [1], resize: 'fill', ...p,
});

/** The display pixel at (x, y) of a w-wide image. */
const at = (display: Uint8Array, w: number, x: number, y: number): RGB => {
  const o = (y * w + x) * 3;
  return [display[o], display[o + 1], display[o + 2]];
};

async function rejection(p: Promise<unknown>): Promise<ConvlensError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ConvlensError);
    return err as ConvlensError;
  }
  throw new Error('expected a rejection');
}

const strip = (refs: ImageRef[]) => refs.map(({ id, source, label, labelName }) => ({ id, source, label, labelName }));

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'convlens-data-'));
  // ImageFolder: two classes, file order needs natural sort (img2 < img10).
  await solid(join(tmp, 'pets/dog/img10.png'));
  await solid(join(tmp, 'pets/dog/img2.png'));
  await solid(join(tmp, 'pets/cat/b.jpg.png'));
  await solid(join(tmp, 'pets/cat/a.png'));
  await writeFile(join(tmp, 'pets/cat/notes.txt'), 'not an image');
  await writeFile(join(tmp, 'pets/.DS_Store'), '');
  // Numeric class folders, unbalanced: 0 has 5, 1 has 1, 2 has 5.
  for (const [cls, n] of [['0', 5], ['1', 1], ['2', 5]] as const) {
    for (let i = 0; i < n; i++) await solid(join(tmp, `digits/${cls}/${i}.png`));
  }
  await mkdir(join(tmp, 'empty/cat'), { recursive: true });
  await writeFile(join(tmp, 'empty/readme.md'), '#');
  // Lists: images beside the list file, in a sub folder.
  await solid(join(tmp, 'lists/img/a.png'));
  await solid(join(tmp, 'lists/img/b.png'));
  await solid(join(tmp, 'lists/other/a.png'));
  await writeFile(join(tmp, 'broken.png'), 'this is not a png');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('folder sources', () => {
  it('lists <class>/<file> sorted by class then natural file order, labels from class names', async () => {
    const refs = await listImages({ folder: 'pets' }, ctx({ classNames: ['dog', 'cat'] }));
    expect(strip(refs)).toEqual([
      { id: 'dog-img2', source: 'dog/img2.png', label: 0, labelName: 'dog' },
      { id: 'dog-img10', source: 'dog/img10.png', label: 0, labelName: 'dog' },
      { id: 'cat-a', source: 'cat/a.png', label: 1, labelName: 'cat' },
      { id: 'cat-b-jpg', source: 'cat/b.jpg.png', label: 1, labelName: 'cat' },
    ]);
    expect(refs[0].path).toBe(join(tmp, 'pets/dog/img2.png'));
    expect(refs[0].origin).toBe('viz.yaml: data.samples.folder');
  });

  it('without class names: numeric folders are indices, named folders keep their name and warn', async () => {
    const digits = await listImages({ folder: 'digits', limit: 100 }, ctx());
    expect(digits.map((r) => r.label)).toEqual([0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2]);
    expect(digits[0].labelName).toBe('0');

    const log = new MemoryLogger();
    const pets = await listImages({ folder: 'pets' }, ctx({ logger: log }));
    expect(pets.map((r) => [r.source, r.label, r.labelName])).toEqual([
      ['cat/a.png', undefined, 'cat'],
      ['cat/b.jpg.png', undefined, 'cat'],
      ['dog/img2.png', undefined, 'dog'],
      ['dog/img10.png', undefined, 'dog'],
    ]);
    expect(log.records.filter((r) => r.level === 'warn')).toHaveLength(1);
    expect(log.text()).toContain('class folders cat, dog are names, but no class names are known');
  });

  it('numeric folder names are indices into the class names when no name matches', async () => {
    const refs = await listImages({ folder: 'digits', limit: 3 }, ctx({ classNames: ['zero', 'one', 'two'] }));
    expect(refs.map((r) => [r.label, r.labelName])).toEqual([[0, 'zero'], [1, 'one'], [2, 'two']]);
  });

  it('takes a class-balanced selection under a limit (round-robin, order stays class then file)', async () => {
    const refs = await listImages({ folder: 'digits', limit: 7 }, ctx());
    // round-robin: 0/0, 1/0, 2/0, 0/1, 2/1, 0/2, 2/2 (class 1 has only one image)
    expect(refs.map((r) => r.source)).toEqual(['0/0.png', '0/1.png', '0/2.png', '1/0.png', '2/0.png', '2/1.png', '2/2.png']);
    const two = await listImages({ folder: 'digits', limit: 2 }, ctx());
    expect(two.map((r) => r.source)).toEqual(['0/0.png', '1/0.png']);
  });

  it('balancedCounts shares the limit equally and passes unused shares on', () => {
    expect(balancedCounts(Array(10).fill(1000), 2000)).toEqual(Array(10).fill(200));
    expect(balancedCounts([5, 1, 5], 7)).toEqual([3, 1, 3]);
    expect(balancedCounts([3, 3, 3], 4)).toEqual([2, 1, 1]);
    expect(balancedCounts([2, 2], 100)).toEqual([2, 2]);
  });

  it('a missing folder names the key, the path as given and where it looked', async () => {
    const err = await rejection(listImages({ folder: 'nope' }, ctx()));
    expect(err.message).toBe(`viz.yaml: data.samples.folder: folder "nope" not found (looked for ${join(tmp, 'nope')})`);
    expect(err.hint).toBe('Create it with one subfolder per class (nope/<class>/*.png|jpg|jpeg|webp) or fix data.samples.folder; relative paths start at the folder holding viz.yaml.');
  });

  it('an empty folder and a file given as folder are errors naming the key', async () => {
    const empty = await rejection(listImages({ folder: 'empty' }, ctx({ key: 'data.dataset' })));
    expect(empty.message).toBe(`viz.yaml: data.dataset.folder: no images in ${join(tmp, 'empty')} (looked for .png, .jpg, .jpeg, .webp in it and in its class subfolders)`);
    expect(empty.hint).toContain('data.dataset.folder');
    const file = await rejection(listImages({ folder: 'broken.png' }, ctx()));
    expect(file.message).toBe(`viz.yaml: data.samples.folder: "broken.png" is a file, not a folder (${join(tmp, 'broken.png')})`);
  });

  it('an unknown class folder lists the nearest class names', async () => {
    const err = await rejection(listImages({ folder: 'pets' }, ctx({ classNames: ['dog', 'bird', 'cow'] })));
    expect(err.message).toBe(`viz.yaml: data.samples.folder: class folder "cat" (${join(tmp, 'pets/cat')}) is not a known class; nearest: cow, dog, bird`);
    expect(err.hint).toContain('rename the class folder');
  });
});

describe('list sources', () => {
  it('reads CSV without a header: path,label with names, indices and empty labels', async () => {
    await writeFile(join(tmp, 'lists/plain.csv'), 'img/a.png,dog\nimg/b.png,1\n\nother/a.png,\n');
    const refs = await listImages({ list: 'lists/plain.csv' }, ctx({ classNames: ['cat', 'dog'] }));
    expect(strip(refs)).toEqual([
      { id: 'a', source: 'img/a.png', label: 1, labelName: 'dog' },
      { id: 'b', source: 'img/b.png', label: 1, labelName: 'dog' },
      { id: 'a-2', source: 'other/a.png', label: undefined, labelName: undefined },
    ]);
    expect(refs[0].path).toBe(join(tmp, 'lists/img/a.png'));
    expect(refs[2].path).toBe(join(tmp, 'lists/other/a.png'));
  });

  it('reads CSV with a header, columns by name, CRLF and quoted fields', async () => {
    await writeFile(join(tmp, 'lists/header.csv'), 'label,path,extra\r\ncat,"img/b.png",x\r\n0,img/a.png,"y, z"\r\n');
    const refs = await listImages({ list: 'lists/header.csv' }, ctx({ classNames: ['cat', 'dog'] }));
    expect(strip(refs)).toEqual([
      { id: 'b', source: 'img/b.png', label: 0, labelName: 'cat' },
      { id: 'a', source: 'img/a.png', label: 0, labelName: 'cat' },
    ]);
    expect(parseCsv('a,"b ""q"", c"\n\n"multi\nline",2')).toEqual([
      { cells: ['a', 'b "q", c'], line: 1 },
      { cells: ['multi\nline', '2'], line: 3 },
    ]);
  });

  it('reads JSON lists of objects and of strings, keeping list order and applying limit', async () => {
    await writeFile(join(tmp, 'lists/objects.json'), JSON.stringify([
      { path: 'img/b.png', label: 'dog' }, { path: 'img/a.png', label: 0 }, { path: 'other/a.png' },
    ]));
    const objs = await listImages({ list: 'lists/objects.json', limit: 2 }, ctx({ classNames: ['cat', 'dog'] }));
    expect(strip(objs)).toEqual([
      { id: 'b', source: 'img/b.png', label: 1, labelName: 'dog' },
      { id: 'a', source: 'img/a.png', label: 0, labelName: 'cat' },
    ]);
    await writeFile(join(tmp, 'lists/strings.json'), JSON.stringify(['img/a.png', 'other/a.png']));
    const strs = await listImages({ list: 'lists/strings.json' }, ctx());
    expect(strip(strs)).toEqual([
      { id: 'a', source: 'img/a.png', label: undefined, labelName: undefined },
      { id: 'a-2', source: 'other/a.png', label: undefined, labelName: undefined },
    ]);
  });

  it('index labels without class names stay indices; name labels warn', async () => {
    await writeFile(join(tmp, 'lists/idx.csv'), 'img/a.png,3\nimg/b.png,cat\n');
    const log = new MemoryLogger();
    const refs = await listImages({ list: 'lists/idx.csv' }, ctx({ logger: log }));
    expect(refs.map((r) => [r.label, r.labelName])).toEqual([[3, '3'], [undefined, 'cat']]);
    expect(log.records.map((r) => r.level)).toEqual(['warn']);
  });

  it('an unknown label names the file, line and label and lists the nearest names', async () => {
    await writeFile(join(tmp, 'lists/labels.csv'), 'path,label\nimg/a.png,cat\nimg/b.png,dgo\n');
    const err = await rejection(listImages({ list: 'lists/labels.csv' }, ctx({ classNames: ['cat', 'dog', 'bird'] })));
    expect(err.message).toBe('viz.yaml: data.samples.list: labels.csv line 3: unknown label "dgo"; nearest: dog, cat, bird');
    expect(err.hint).toBe('Labels must match a class name from model.labels exactly (case matters) or be a class index 0-2; fix the label or the labels file.');
  });

  it('an out-of-range index label is an error', async () => {
    await writeFile(join(tmp, 'lists/range.json'), JSON.stringify([{ path: 'img/a.png', label: 2 }]));
    const err = await rejection(listImages({ list: 'lists/range.json' }, ctx({ classNames: ['cat', 'dog'] })));
    expect(err.message).toBe('viz.yaml: data.samples.list: range.json item 1: label 2 is out of range; there are 2 classes (0-1)');
  });

  it('a missing list file and missing images in it are errors naming the key and paths', async () => {
    const noList = await rejection(listImages({ list: 'lists/none.csv' }, ctx({ key: 'data.dataset' })));
    expect(noList.message).toBe(`viz.yaml: data.dataset.list: list file "lists/none.csv" not found (looked for ${join(tmp, 'lists/none.csv')})`);
    await writeFile(join(tmp, 'lists/missing.csv'), 'img/a.png\nimg/x.png\nimg/y.png\n');
    const missing = await rejection(listImages({ list: 'lists/missing.csv' }, ctx()));
    expect(missing.message).toBe(`viz.yaml: data.samples.list: missing.csv line 2: image "img/x.png" not found (looked for ${join(tmp, 'lists/img/x.png')}) (and 1 more: "img/y.png")`);
    expect(missing.hint).toContain("relative to the list file's folder");
  });

  it('malformed JSON lists are errors with the expected shape in the hint', async () => {
    await writeFile(join(tmp, 'lists/bad.json'), JSON.stringify([{ file: 'img/a.png' }]));
    const err = await rejection(listImages({ list: 'lists/bad.json' }, ctx()));
    expect(err.message).toBe('viz.yaml: data.samples.list: bad.json item 1: "path" must be a non-empty string');
    expect(err.hint).toContain('[{"path"');
  });
});

describe('files sources', () => {
  it('resolves against the config folder, keeps order, no labels, applies limit', async () => {
    const refs = await listImages({ files: ['lists/img/b.png', 'lists/img/a.png', 'lists/other/a.png'], limit: 2 }, ctx());
    expect(strip(refs)).toEqual([
      { id: 'b', source: 'lists/img/b.png', label: undefined, labelName: undefined },
      { id: 'a', source: 'lists/img/a.png', label: undefined, labelName: undefined },
    ]);
    expect(refs[1].path).toBe(join(tmp, 'lists/img/a.png'));
  });

  it('a file in a folder named like a class takes that class; {path, label} entries give their own', async () => {
    const refs = await listImages({ files: ['pets/dog/img2.png', 'lists/img/a.png', { path: 'pets/cat/a.png', label: 'dog' }, { path: 'lists/img/b.png', label: 0 }, { path: 'pets/dog/img10.png' }] }, ctx({ classNames: ['cat', 'dog'] }));
    expect(refs.map((r) => [r.source, r.label, r.labelName])).toEqual([
      ['pets/dog/img2.png', 1, 'dog'],
      ['lists/img/a.png', undefined, undefined],
      ['pets/cat/a.png', 1, 'dog'],
      ['lists/img/b.png', 0, 'cat'],
      ['pets/dog/img10.png', 1, 'dog'],
    ]);
    const err = await rejection(listImages({ files: [{ path: 'pets/cat/a.png', label: 'cow' }] }, ctx({ classNames: ['cat', 'dog'] })));
    expect(err.message).toMatch(/^viz\.yaml: data\.samples\.files: \[0\]: unknown label "cow"; nearest: /);
  });

  it('a missing file names its index in the key', async () => {
    const err = await rejection(listImages({ files: ['lists/img/a.png', 'nope.png'] }, ctx()));
    expect(err.message).toBe(`viz.yaml: data.samples.files[1]: image "nope.png" not found (looked for ${join(tmp, 'nope.png')})`);
  });

  it('needs exactly one of folder, list, files', async () => {
    const err = await rejection(listImages({ folder: 'pets', files: ['a.png'] } as DataSource, ctx()));
    expect(err.message).toBe('viz.yaml: data.samples: give exactly one of folder, list or files (got folder, files)');
  });
});

describe('ids and ordering', () => {
  it('slugs are [a-z0-9-], unique with numeric suffixes', () => {
    expect(slugify('Café_01 (copy).PNG')).toBe('cafe-01-copy-png');
    expect(slugify('___')).toBe('image');
    expect(uniqueIds(['a', 'A', 'a-2', 'a'])).toEqual(['a', 'a-2', 'a-2-2', 'a-3']);
    for (const id of uniqueIds(['x y', '%%', 'Ünïcode'])) expect(id).toMatch(/^[a-z0-9][a-z0-9-]*$/);
  });

  it('natural order compares digit runs as numbers', () => {
    expect(['img10.png', 'img2.png', 'img1.png', 'b.png', 'a10b.png', 'a9b.png'].sort(naturalCompare))
      .toEqual(['a9b.png', 'a10b.png', 'b.png', 'img1.png', 'img2.png', 'img10.png']);
  });
});

describe('labels file', () => {
  it('reads one trimmed name per line, dropping the trailing empty line', async () => {
    await writeFile(join(tmp, 'labels.txt'), '\uFEFFcat\r\n  dog \r\nhot dog\r\n');
    expect(await readLabelsFile(join(tmp, 'labels.txt'))).toEqual(['cat', 'dog', 'hot dog']);
  });

  it('an empty line in the middle and a missing file are errors', async () => {
    await writeFile(join(tmp, 'gap.txt'), 'cat\n\ndog\n');
    const gap = await rejection(readLabelsFile(join(tmp, 'gap.txt')));
    expect(gap.message).toBe(`viz.yaml: model.labels: ${join(tmp, 'gap.txt')} line 2 is empty`);
    const none = await rejection(readLabelsFile(join(tmp, 'none.txt')));
    expect(none.message).toBe(`viz.yaml: model.labels: cannot read labels file "${join(tmp, 'none.txt')}" (ENOENT)`);
  });
});

describe('preprocessing', () => {
  // 96x32: x < 32 green, 32 <= x < 64 red, x >= 64 blue; resized to 16x16.
  const G: RGB = [0, 255, 0];
  const R: RGB = [255, 0, 0];
  const B: RGB = [0, 0, 255];
  const K: RGB = [0, 0, 0];
  let stripes: string;
  beforeAll(async () => {
    stripes = await png(join(tmp, 'stripes.png'), 96, 32, (x) => (x < 32 ? G : x < 64 ? R : B));
  });
  const square = (resize: Preprocessing['resize']) => preprocessImage(stripes, pre({ size: [16, 16], resize }));

  it('fill stretches: all three stripes across the full height', async () => {
    const { display } = await square('fill');
    for (const y of [0, 8, 15]) {
      for (const x of [0, 1, 2]) expect(at(display, 16, x, y)).toEqual(G);
      for (const x of [13, 14, 15]) expect(at(display, 16, x, y)).toEqual(B);
    }
  });

  it('cover scales to 48x16 and crops the centre: only the red stripe (x 32..64) remains', async () => {
    const { display } = await square('cover');
    // Columns away from the crop edges are pure red (the edges may pick up neighbouring stripes).
    for (const y of [0, 8, 15]) for (let x = 3; x <= 12; x++) expect(at(display, 16, x, y)).toEqual(R);
  });

  it('contain scales to 16x5 (32/6 rounded), centred at rows 5..9, black above and below', async () => {
    const { display } = await square('contain');
    for (const y of [0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 15]) for (let x = 0; x < 16; x++) expect(at(display, 16, x, y)).toEqual(K);
    for (const y of [5, 6, 7, 8, 9]) {
      expect(at(display, 16, 0, y)).toEqual(G);
      expect(at(display, 16, 15, y)).toEqual(B);
    }
  });

  it('input is NHWC float32 with the display pixel values at scale 1', async () => {
    const { input, display } = await square('fill');
    expect(input).toBeInstanceOf(Float32Array);
    expect(input.length).toBe(16 * 16 * 3);
    expect(display).toBeInstanceOf(Uint8Array);
    expect(Array.from(input.slice(0, 3))).toEqual(G);
    const o = (8 * 16 + 15) * 3;
    expect(Array.from(input.slice(o, o + 3))).toEqual(B);
  });

  it('grayscale is PIL luma round(0.299R + 0.587G + 0.114B), replicated in the display', async () => {
    const file = await png(join(tmp, 'gray-src.png'), 2, 1, (x) => (x === 0 ? [200, 100, 50] : [255, 255, 255]));
    const { input, display } = await preprocessImage(file, pre({ size: [1, 2], channels: 1 }));
    // (200*19595 + 100*38470 + 50*7471 + 32768) >> 16 = 124 (0.299*200 + 0.587*100 + 0.114*50 = 124.2)
    expect(Array.from(input)).toEqual([124, 255]);
    expect(Array.from(display)).toEqual([124, 124, 124, 255, 255, 255]);
  });

  it('a 1-channel source image becomes RGB display and exact gray input', async () => {
    const file = join(tmp, 'gray1.png');
    await sharp(Buffer.from([0, 37, 200, 255]), { raw: { width: 2, height: 2, channels: 1 } }).png().toFile(file);
    const rgb = await preprocessImage(file, pre());
    expect(Array.from(rgb.display)).toEqual([0, 0, 0, 37, 37, 37, 200, 200, 200, 255, 255, 255]);
    const gray = await preprocessImage(file, pre({ channels: 1 }));
    expect(Array.from(gray.input)).toEqual([0, 37, 200, 255]);
  });

  it('alpha is flattened onto black', async () => {
    const file = await png(join(tmp, 'alpha.png'), 2, 1, (x) => (x === 0 ? [255, 0, 0, 0] : [0, 255, 0, 255]));
    const { display } = await preprocessImage(file, pre({ size: [1, 2] }));
    expect(Array.from(display)).toEqual([0, 0, 0, 0, 255, 0]);
  });

  it('bgr reverses the input channels, not the display', async () => {
    const file = await png(join(tmp, 'bgr.png'), 1, 1, () => [10, 20, 30]);
    const { input, display } = await preprocessImage(file, pre({ size: [1, 1], channelOrder: 'bgr' }));
    expect(Array.from(input)).toEqual([30, 20, 10]);
    expect(Array.from(display)).toEqual([10, 20, 30]);
  });

  it('value = (pixel * scale - mean[c]) / std[c], per channel or broadcast, in float32', async () => {
    const file = await png(join(tmp, 'norm.png'), 1, 1, () => [10, 20, 30]);
    const scale = 1 / 255;
    const mean = [0.485, 0.456, 0.406];
    const std = [0.229, 0.224, 0.225];
    const per = await preprocessImage(file, pre({ size: [1, 1], scale, mean, std }));
    expect(Array.from(per.input)).toEqual([10, 20, 30].map((p, c) => Math.fround((p * scale - mean[c]) / std[c])));
    const one = await preprocessImage(file, pre({ size: [1, 1], scale: 2, mean: [5], std: [4] }));
    expect(Array.from(one.input)).toEqual([3.75, 8.75, 13.75]); // (10*2-5)/4, (20*2-5)/4, (30*2-5)/4
    // Caffe-style: bgr with mean in model (BGR) order.
    const caffe = await preprocessImage(file, pre({ size: [1, 1], channelOrder: 'bgr', mean: [103.939, 116.779, 123.68] }));
    expect(Array.from(caffe.input)).toEqual([30 - 103.939, 20 - 116.779, 10 - 123.68].map(Math.fround));
  });

  it('resolvePreprocessing fills size and channels from the model and checks mean/std lengths', () => {
    const input = { channelOrder: 'rgb' as const, scale: 1 / 255, mean: [0], std: [1], resize: 'fill' as const, exifOrientation: 'ignore' as const };
    expect(resolvePreprocessing(input, { height: 28, width: 32, channels: 1 })).toEqual({ ...input, size: [28, 32], channels: 1 });
    expect(resolvePreprocessing({ ...input, size: [8, 9], channels: 3 }, { height: null, width: null, channels: 3 }).size).toEqual([8, 9]);
    expect(() => resolvePreprocessing({ ...input, mean: [1, 2, 3] }, { height: 28, width: 28, channels: 1 }))
      .toThrow('viz.yaml: input.mean: has 3 values for 1 channel(s)');
    expect(() => resolvePreprocessing(input, { height: null, width: null, channels: 3 }))
      .toThrow('viz.yaml: input.size: the model does not fix its input size (?x?)');
    expect(() => resolvePreprocessing(input, { height: 8, width: 8, channels: 4 }))
      .toThrow('viz.yaml: input.channels: the model takes 4 channels; convlens feeds 1 (grayscale) or 3 (colour)');
  });
});

describe('loading', () => {
  it('loadImages stacks NHWC; batches yields the same in order, last batch smaller', async () => {
    const refs = await listImages({ folder: 'digits', limit: 5 }, ctx());
    const p = pre({ size: [3, 2], channels: 1 });
    const all = await loadImages(refs, p, { concurrency: 2 });
    expect(all.shape).toEqual([5, 3, 2, 1]);
    expect(all.input.length).toBe(5 * 3 * 2);
    expect(all.display).toHaveLength(5);
    expect(all.display[0].length).toBe(3 * 2 * 3);
    expect(all.input.every((v) => v === 128)).toBe(true);

    const seen: ImageBatch[] = [];
    for await (const b of batches(refs, p, 2, { concurrency: 1 })) seen.push(b);
    expect(seen.map((b) => b.shape[0])).toEqual([2, 2, 1]);
    expect(seen.flatMap((b) => b.refs.map((r) => r.id))).toEqual(refs.map((r) => r.id));
    const joined = new Float32Array(all.input.length);
    let o = 0;
    for (const b of seen) { joined.set(b.input, o); o += b.input.length; }
    expect(joined).toEqual(all.input);

    const none: ImageBatch[] = [];
    for await (const b of batches([], p, 4)) none.push(b);
    expect(none).toEqual([]);
  });

  it('an unreadable image is an error naming the key, the source and the path', async () => {
    const refs = await listImages({ files: ['lists/img/a.png', 'broken.png'] }, ctx());
    const err = await rejection(loadImages(refs, pre()));
    expect(err.message).toMatch(new RegExp(`^viz\\.yaml: data\\.samples\\.files: cannot read image "broken\\.png" \\(${reEscape(join(tmp, 'broken.png'))}\\): .+`));
    expect(err.hint).toContain('Replace or remove the file');
    // The stream reports it too, and stopping early leaves no unhandled rejection behind.
    const it = batches(refs, pre(), 1);
    expect((await it.next()).value?.refs[0].source).toBe('lists/img/a.png');
    await expect(it.next()).rejects.toThrow('cannot read image "broken.png"');
  });
});

const reEscape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
