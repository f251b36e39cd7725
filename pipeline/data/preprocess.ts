import sharp from 'sharp';
import type { Config } from '../config.ts';
import { ConvlensError } from '../errors.ts';

/** How an image becomes model input (`input` in viz.yaml): decoding, resizing, normalisation. */

/** The `input` section with every default filled in from the model. */
export interface Preprocessing {
  /** [height, width] of the model input. */
  size: [number, number];
  channels: 1 | 3;
  /** Order of the channels in the model input; `display` is always RGB. */
  channelOrder: 'rgb' | 'bgr';
  scale: number;
  /** Length 1 (every channel) or `channels`, indexed in model channel order (after channelOrder). */
  mean: number[];
  std: number[];
  resize: 'fill' | 'cover' | 'contain';
  /** Rotate by the EXIF orientation before anything else (input.exifOrientation: apply). */
  exifOrientation?: 'apply' | 'ignore';
}

export interface PreprocessedImage {
  /** h*w*c float32, HWC, `(pixel * scale - mean[c]) / std[c]`. */
  input: Float32Array;
  /** h*w*3 RGB, 8-bit: the image as the model saw it (before normalisation), gray replicated. */
  display: Uint8Array;
}

/** What `pixelToInput` reads of the preprocessing. */
export type PixelScaling = Pick<Preprocessing, 'scale' | 'mean' | 'std'>;

/** values[c], or values[0] for every channel when only one value is given (input.mean, input.std, a per-channel option). */
export function perChannel<T>(values: readonly T[], c: number): T {
  return values[values.length === 1 ? 0 : c];
}

/**
 * The model input value of a pixel value p (0-255) in channel c, c in model channel order
 * (after `channelOrder`):
 *   x = (p * scale - mean[c]) / std[c]
 * with mean and std broadcast when of length 1 (`perChannel`). Computed in float64; a caller
 * storing into a Float32Array rounds once. The single home of the formula: the images'
 * preprocessing and every pixel value an option names (a black baseline, an occlusion or
 * deletion fill, the valid input range) go through it.
 */
export function pixelToInput(pixel: number, c: number, pre: PixelScaling): number {
  return (pixel * pre.scale - perChannel(pre.mean, c)) / perChannel(pre.std, c);
}

/** One pixel value in each of `channels` channels: [pixelToInput(p, 0), ..., pixelToInput(p, channels - 1)]. */
export function pixelToInputs(pixel: number, channels: number, pre: PixelScaling): number[] {
  return Array.from({ length: channels }, (_, c) => pixelToInput(pixel, c, pre));
}

/**
 * Fills `input` from the model where the config leaves it open: size = the model's [H, W],
 * channels = its C. Checks mean/std lengths (1 or channels).
 */
export function resolvePreprocessing(
  input: Config['input'],
  model: { height?: number | null; width?: number | null; channels?: number | null } = {},
  configLabel = 'viz.yaml',
): Preprocessing {
  const size = input.size ?? (model.height && model.width ? [model.height, model.width] as [number, number] : undefined);
  if (!size) {
    throw new ConvlensError(`${configLabel}: input.size: the model does not fix its input size (${model.height ?? '?'}x${model.width ?? '?'})`, {
      hint: 'Set input.size to [height, width], the size the model was trained on.',
    });
  }
  const channels = input.channels ?? model.channels ?? undefined;
  if (channels !== 1 && channels !== 3) {
    throw new ConvlensError(`${configLabel}: input.channels: ${channels === undefined || channels === null ? 'the model does not fix its channel count' : `the model takes ${channels} channels`}; convlens feeds 1 (grayscale) or 3 (colour)`, {
      hint: 'Set input.channels to 1 or 3 to match how the model was trained.',
    });
  }
  if (model.channels && input.channels && model.channels !== input.channels) {
    throw new ConvlensError(`${configLabel}: input.channels: ${input.channels}, but the model takes ${model.channels} channels`, {
      hint: `Set input.channels to ${model.channels} or remove it to use the model's.`,
    });
  }
  for (const k of ['mean', 'std'] as const) {
    const v = input[k];
    if (v.length !== 1 && v.length !== channels) {
      throw new ConvlensError(`${configLabel}: input.${k}: has ${v.length} values for ${channels} channel(s)`, {
        hint: `Give one value (used for every channel) or ${channels}, in the model's channel order (${channels === 3 ? input.channelOrder : 'gray'}).`,
      });
    }
  }
  return { size, channels, channelOrder: input.channelOrder, scale: input.scale, mean: input.mean, std: input.std, resize: input.resize, exifOrientation: input.exifOrientation };
}

/**
 * Decodes and preprocesses one image:
 *  1. decode (any format sharp reads; a file libvips warns about, such as a JPEG cut short or
 *     corrupt mid-file, is an error rather than half an image), apply the EXIF orientation only
 *     with input.exifOrientation: apply (by default not, like tf.io.decode_image and PIL),
 *     convert to sRGB 8-bit, flatten alpha onto black;
 *  2. resize to [h, w] (lanczos3): fill stretches; cover scales to cover and crops the centre;
 *     contain scales to fit and pads with black, centred;
 *  3. channels 1: gray = round(0.299 R + 0.587 G + 0.114 B) (ITU-R 601 luma, computed as PIL
 *     does: (19595 R + 38470 G + 7471 B + 32768) >> 16);
 *  4. input[y, x, c] = pixelToInput(p[c'], c), where c' = c for rgb and 2 - c for
 *     bgr, mean/std broadcast when of length 1; display[y, x] = (R, G, B), or (g, g, g).
 */
export async function preprocessImage(image: string | Buffer, pre: Preprocessing): Promise<PreprocessedImage> {
  const [h, w] = pre.size;
  let img = sharp(image, { failOn: 'warning' });
  if (pre.exifOrientation === 'apply') img = img.rotate();
  const { data, info } = await img
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .resize(w, h, { fit: pre.resize, position: 'centre', background: { r: 0, g: 0, b: 0, alpha: 1 }, kernel: 'lanczos3' })
    .toColourspace('srgb')
    .removeAlpha()
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h || info.channels !== 3 || data.length !== w * h * 3) {
    throw new Error(`decoded ${info.width}x${info.height}x${info.channels}, expected ${w}x${h}x3`);
  }
  const n = w * h;
  const c = pre.channels;
  const input = new Float32Array(n * c);
  const display = new Uint8Array(n * 3);
  if (c === 1) {
    for (let i = 0; i < n; i++) {
      const g = (data[3 * i] * 19595 + data[3 * i + 1] * 38470 + data[3 * i + 2] * 7471 + 32768) >> 16;
      display[3 * i] = display[3 * i + 1] = display[3 * i + 2] = g;
      input[i] = pixelToInput(g, 0, pre);
    }
  } else {
    display.set(data);
    const src = pre.channelOrder === 'bgr' ? [2, 1, 0] : [0, 1, 2];
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 3; k++) input[3 * i + k] = pixelToInput(data[3 * i + src[k]], k, pre);
    }
  }
  return { input, display };
}

export const BAD_IMAGE_HINT = 'Replace or remove the file; convlens reads PNG, JPEG and WebP images (and other formats sharp decodes when listed by name).';
