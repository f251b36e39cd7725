import type * as tf from '@tensorflow/tfjs';
import { separableGaussianBlur } from './render.ts';

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
 * kernel exp(-d^2 / 2 sigma^2) normalised over |d| <= r (render.ts `separableGaussianBlur`),
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
