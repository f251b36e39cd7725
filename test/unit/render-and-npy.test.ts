import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../pipeline/backend.ts';
import { silentLogger } from '../../pipeline/logger.ts';
import { decodeNpy, encodeNpy } from '../../pipeline/npy.ts';
import { blend, colorize, colormapRgb, normalizeMinMax, tileGrid, upsampleBilinear } from '../../pipeline/render.ts';

describe('render', () => {
  beforeAll(async () => {
    await initBackend('wasm', silentLogger);
  });

  it('min-max normalises, and a constant map becomes zeros', () => {
    expect(Array.from(normalizeMinMax([2, 4, 6]))).toEqual([0, 0.5, 1]);
    expect(Array.from(normalizeMinMax([3, 3]))).toEqual([0, 0]);
  });

  it('colour maps hit the published end points (polynomial fits: within 5 of 255)', () => {
    const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) <= 5);
    expect(near(colormapRgb(0, 'viridis'), [68, 1, 84])).toBe(true); // #440154
    expect(near(colormapRgb(1, 'viridis'), [253, 231, 37])).toBe(true); // #fde725
    expect(colormapRgb(0, 'turbo')).toEqual([35, 23, 27]);
    expect(colormapRgb(1, 'turbo')).toEqual([144, 13, 0]);
    expect(colormapRgb(0.5, 'gray')).toEqual([128, 128, 128]);
    expect(Array.from(colorize([0, 1, Number.NaN], 'gray'))).toEqual([0, 0, 0, 255, 255, 255, 0, 0, 0]);
  });

  it('blends as (1 - a) * image + a * heat', () => {
    expect(Array.from(blend(new Uint8Array([0, 100, 200]), new Uint8Array([200, 100, 0]), 0.25))).toEqual([50, 100, 150]);
  });

  it('upsamples bilinearly with half-pixel centres (cv2.resize INTER_LINEAR)', () => {
    // 1x2 -> 1x4: output x centres at 0.25, 0.75, 1.25, 1.75 in source pixels of centre 0.5, 1.5
    // => source coords -0.25, 0.25, 0.75, 1.25, clamped: values 0, 0.25*... for [0, 4]
    const out = upsampleBilinear(tf.tensor4d([0, 4], [1, 1, 2, 1]), 1, 4);
    expect(Array.from(out.dataSync())).toEqual([0, 1, 3, 4]);
    out.dispose();
  });

  it('tiles a grid with gaps and nearest-neighbour scaling', () => {
    const g = tileGrid([new Uint8Array([10]), new Uint8Array([20]), new Uint8Array([30])], 1, 1, 1, { scale: 2, gap: 1, background: 0 });
    expect([g.width, g.height]).toEqual([7, 7]);
    const row = (y: number) => Array.from(g.pixels.subarray(y * 7, y * 7 + 7));
    expect(row(1)).toEqual([0, 10, 10, 0, 20, 20, 0]);
    expect(row(4)).toEqual([0, 30, 30, 0, 0, 0, 0]);
  });
});

describe('npy', () => {
  it('round-trips float32 data with a 64-byte aligned header numpy accepts', () => {
    const data = Float32Array.from([1.5, -2, 3.25, 0, 7, 8]);
    const bytes = encodeNpy(data, [2, 3]);
    expect(Array.from(bytes.subarray(0, 8))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
    const headerLen = bytes[8] | (bytes[9] << 8);
    expect((10 + headerLen) % 64).toBe(0);
    const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
    expect(header).toMatch(/^\{'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\), \} *\n$/);
    const back = decodeNpy(bytes);
    expect(back.shape).toEqual([2, 3]);
    expect(Array.from(back.data)).toEqual(Array.from(data));
    expect(decodeNpy(encodeNpy(Float32Array.from([1]), [1])).shape).toEqual([1]);
    expect(() => encodeNpy(data, [4])).toThrow(/shape \[4\] holds 4 values, data has 6/);
  });
});
