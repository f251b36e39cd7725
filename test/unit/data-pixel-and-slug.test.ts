/**
 * pixelToInput, the one pixel -> model input formula (x = (p * scale - mean[c]) / std[c], mean
 * and std broadcast from one value), is what preprocessImage writes, channel order included; and
 * the one slug function keeps both of its callers' names: image ids (accents folded, letters and
 * digits, 60 characters) and release file names (`.`, `_`, `-` kept).
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { perChannel, pixelToInput, pixelToInputs, preprocessImage, type Preprocessing } from '../../pipeline/data.ts';
import { FILE_NAME_SLUG, IMAGE_ID_SLUG, slug, slugify } from '../../pipeline/data/ids.ts';
import { slug as releaseSlug } from '../../pipeline/release-writer.ts';

const pre = (over: Partial<Preprocessing> = {}): Preprocessing => ({
  size: [2, 3], channels: 3, channelOrder: 'rgb', scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], resize: 'fill', ...over,
});

describe('pixelToInput', () => {
  it('is (p * scale - mean[c]) / std[c], one mean / std broadcast to every channel', () => {
    const p = pre();
    expect(pixelToInput(128, 1, p)).toBe((128 * p.scale - 0.456) / 0.224);
    expect(pixelToInputs(0, 3, p)).toEqual([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]);
    const one = pre({ mean: [0.5], std: [0.25] });
    expect(pixelToInputs(255, 3, one)).toEqual([2, 2, 2]);
    expect(perChannel([7], 2)).toBe(7);
    expect(perChannel([1, 2, 3], 2)).toBe(3);
  });

  it('is what preprocessImage writes, in model channel order (bgr reads R into channel 2)', async () => {
    const rgb = [10, 200, 30, 250, 0, 128, 64, 64, 64, 1, 2, 3, 90, 45, 180, 255, 255, 0];
    const png = await sharp(Buffer.from(rgb), { raw: { width: 3, height: 2, channels: 3 } }).png().toBuffer();
    for (const order of ['rgb', 'bgr'] as const) {
      const p = pre({ channelOrder: order });
      const { input } = await preprocessImage(png, p);
      const want = Float32Array.from({ length: 18 }, (_, i) => pixelToInput(rgb[i - (i % 3) + (order === 'bgr' ? 2 - (i % 3) : i % 3)], i % 3, p));
      expect(Array.from(input)).toEqual(Array.from(want));
    }
    const gray = await preprocessImage(png, pre({ channels: 1, mean: [0.1], std: [0.3] }));
    const g = (19595 * 10 + 38470 * 200 + 7471 * 30 + 32768) >> 16;
    expect(gray.input[0]).toBe(Math.fround(pixelToInput(g, 0, pre({ mean: [0.1], std: [0.3] }))));
  });
});

describe('slug', () => {
  it('makes image ids: accents folded, letters and digits only, at most 60 characters', () => {
    expect(slugify('Café_01 (copy).PNG')).toBe('cafe-01-copy-png');
    expect(slug('Café_01 (copy).PNG', IMAGE_ID_SLUG)).toBe('cafe-01-copy-png');
    expect(slugify('a--b')).toBe('a-b');
    expect(slugify('x'.repeat(59) + '-yz')).toBe('x'.repeat(59));
    expect(slugify('___')).toBe('image');
    expect(slugify('ÉTÉ')).toBe('ete');
  });

  it('makes release file names: `.`, `_` and `-` kept, no accent folding, no length cap', () => {
    expect(releaseSlug('Block1/Conv:0')).toBe('block1-conv-0');
    expect(releaseSlug('conv2d_1.bn')).toBe('conv2d_1.bn');
    expect(releaseSlug('a--b')).toBe('a--b');
    expect(releaseSlug('Été')).toBe('t');
    expect(releaseSlug('x'.repeat(80))).toBe('x'.repeat(80));
    expect(releaseSlug('::')).toBe('x');
    expect(slug('Block1/Conv:0', FILE_NAME_SLUG)).toBe('block1-conv-0');
  });
});
