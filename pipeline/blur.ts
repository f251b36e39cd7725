import * as tf from '@tensorflow/tfjs';

/**
 * How `gaussianBlur` sizes its kernel and pads the edges, for sigma in pixels and an image
 * H x W (tf.mirrorPad bounds the padding: symmetric up to the size, reflect below it):
 *  - 'scipy': radius r = floor(4 sigma + 0.5) (scipy.ndimage.gaussian_filter's truncate=4),
 *    clamped per axis to H and W; symmetric edges (d c b a | a b c d, scipy's mode='reflect').
 *    Integrated gradients' blurred baseline and the insertion metric's starting image, so a
 *    blurred baseline matches scipy's.
 *  - 'three-sigma': r = ceil(3 sigma), capped at min(H, W) - 1, the same on both axes; reflected
 *    edges without repeating the border pixel (d c b | a b c d). Class visualization's
 *    regulariser (image-transforms.ts).
 */
export type BlurRule = 'scipy' | 'three-sigma';

/**
 * Gaussian blur of images [n, H, W, C] over H and W, each channel separately: the separable
 * kernel exp(-d^2 / 2 sigma^2) normalised over |d| <= r (`separableGaussianBlur` below),
 * with the radius r and the edges of `rule`. r = 0 returns a copy.
 */
export function gaussianBlur(x: tf.Tensor4D, sigma: number, rule: BlurRule = 'scipy'): tf.Tensor4D {
  const [, H, W] = x.shape;
  if (rule === 'three-sigma') {
    const r = Math.max(0, Math.min(Math.min(H, W) - 1, Math.ceil(3 * sigma)));
    return separableGaussianBlur(x, sigma, [r, r], 'reflect');
  }
  const r = Math.floor(4 * sigma + 0.5);
  return separableGaussianBlur(x, sigma, [Math.min(r, H), Math.min(r, W)], 'symmetric');
}

/**
 * Separable Gaussian blur of images [n, H, W, C], each channel separately: taps
 * exp(-d^2 / 2 sigma^2) normalised, radius [rh, rw], edges padded with tf.mirrorPad's `edge` mode
 * ('symmetric': d c b a | a b c d, scipy's mode='reflect'; 'reflect': d c b | a b c d). Callers
 * pick the radius rule of the convention they follow.
 */
export function separableGaussianBlur(x: tf.Tensor4D, sigma: number, radius: [number, number], edge: 'symmetric' | 'reflect'): tf.Tensor4D {
  const [rh, rw] = radius;
  if (rh === 0 && rw === 0) return x.clone();
  const C = x.shape[3];
  const taps = (r: number) => {
    const w = Array.from({ length: 2 * r + 1 }, (_, k) => Math.exp(-((k - r) ** 2) / (2 * sigma * sigma)));
    const s = w.reduce((a, b) => a + b, 0);
    return w.map((v) => v / s);
  };
  return tf.tidy(() => {
    const kh = taps(rh);
    const kw = taps(rw);
    const fh = tf.tensor4d(kh.flatMap((v) => new Array<number>(C).fill(v)), [kh.length, 1, C, 1]);
    const fw = tf.tensor4d(kw.flatMap((v) => new Array<number>(C).fill(v)), [1, kw.length, C, 1]);
    const padded = tf.mirrorPad(x, [[0, 0], [rh, rh], [rw, rw], [0, 0]], edge);
    return tf.depthwiseConv2d(tf.depthwiseConv2d(padded, fh, 1, 'valid'), fw, 1, 'valid') as tf.Tensor4D;
  });
}
