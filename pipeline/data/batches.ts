import { ConvlensError } from '../errors.ts';
import type { ImageRef } from './listing.ts';
import { DEFAULT_CONCURRENCY, mapLimit } from './map-limit.ts';
import { BAD_IMAGE_HINT, preprocessImage, type PreprocessedImage, type Preprocessing } from './preprocess.ts';

/**
 * Images decoded into batches: plain typed arrays, NHWC float32, so a caller makes a tensor with
 * `tf.tensor4d(batch.input, batch.shape)` and disposes it itself.
 */

export interface ImageBatch {
  refs: ImageRef[];
  /** n*h*w*c float32, NHWC. */
  input: Float32Array;
  shape: [number, number, number, number];
  /** One h*w*3 RGB image per ref. */
  display: Uint8Array[];
}

export interface LoadOptions {
  /** Images decoded at once (sharp runs them on libuv's thread pool). */
  concurrency?: number;
}

async function preprocessRef(ref: ImageRef, pre: Preprocessing): Promise<PreprocessedImage> {
  try {
    return await preprocessImage(ref.path, pre);
  } catch (err) {
    const reason = (err as Error).message?.split('\n')[0] ?? String(err);
    throw new ConvlensError(`${ref.origin ? `${ref.origin}: ` : ''}cannot read image "${ref.source}" (${ref.path}): ${reason}`, {
      hint: BAD_IMAGE_HINT,
      cause: err,
    });
  }
}

/** An image that could not be decoded, with the first line of the decoder's message. */
export interface BadImage {
  ref: ImageRef;
  reason: string;
}

/**
 * Decodes and preprocesses every ref exactly as `loadImages` will (so whatever would fail a
 * later pass fails here), keeping nothing: the refs that fail, in listing order.
 */
export async function findBadImages(refs: readonly ImageRef[], pre: Preprocessing, opts: LoadOptions & { onDone?: () => void } = {}): Promise<BadImage[]> {
  const found = await mapLimit(refs, opts.concurrency ?? DEFAULT_CONCURRENCY, async (ref) => {
    try {
      await preprocessImage(ref.path, pre);
      return undefined;
    } catch (err) {
      return { ref, reason: (err as Error).message?.split('\n')[0] ?? String(err) };
    } finally {
      opts.onDone?.();
    }
  });
  return found.filter((b): b is BadImage => b !== undefined);
}

/** All refs as one batch (n = refs.length). For large sets use `batches`. */
export async function loadImages(refs: readonly ImageRef[], pre: Preprocessing, opts: LoadOptions = {}): Promise<ImageBatch> {
  const images = await mapLimit(refs, opts.concurrency ?? DEFAULT_CONCURRENCY, (r) => preprocessRef(r, pre));
  return toBatch(refs, images, pre);
}

/**
 * The refs in order, `batchSize` at a time (the last batch may be smaller). Decoding of the next
 * batch overlaps the caller's work on the current one, so at most two batches are in memory.
 */
export async function* batches(refs: readonly ImageRef[], pre: Preprocessing, batchSize: number, opts: LoadOptions = {}): AsyncGenerator<ImageBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`batches: batchSize must be a positive integer, got ${batchSize}`);
  const load = (start: number) => {
    const p = loadImages(refs.slice(start, start + batchSize), pre, opts);
    p.catch(() => {}); // surfaced when awaited; avoids an unhandled rejection if the caller stops early
    return p;
  };
  let next = refs.length > 0 ? load(0) : undefined;
  for (let start = 0; next; start += batchSize) {
    const current = await next;
    next = start + batchSize < refs.length ? load(start + batchSize) : undefined;
    yield current;
  }
}

function toBatch(refs: readonly ImageRef[], images: PreprocessedImage[], pre: Preprocessing): ImageBatch {
  const [h, w] = pre.size;
  const per = h * w * pre.channels;
  const input = new Float32Array(images.length * per);
  images.forEach((im, i) => input.set(im.input, i * per));
  return { refs: [...refs], input, shape: [images.length, h, w, pre.channels], display: images.map((im) => im.display) };
}
