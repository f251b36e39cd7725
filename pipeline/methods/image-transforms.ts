import * as tf from '@tensorflow/tfjs';

/**
 * Transformation robustness and image priors for activation maximisation (Olah et al. 2017,
 * "Feature Visualization"; Lucid's `transform.standard_transforms`; Yosinski et al. 2015 for
 * blurring): a seeded random number source, random affine warps (jitter, scale, rotation)
 * applied differentiably with bilinear sampling, a Gaussian blur and the total variation.
 * Images are NHWC in the model's preprocessed space.
 */


/** One image's warp: rotate by `angle` degrees and scale about the centre, then shift by (dx, dy) px. */
export interface Affine {
  angle: number;
  scale: number;
  dx: number;
  dy: number;
}

export interface TransformOptions {
  /** Largest shift in pixels; shifts are integers drawn uniformly from [-jitter, jitter]. */
  jitter: number;
  /** Scale factors, one drawn uniformly per step. */
  scales: readonly number[];
  /** Largest rotation in degrees; angles are integers drawn uniformly from [-rotate, rotate]. */
  rotate: number;
}

const pick = (rng: () => number, n: number) => Math.min(n - 1, Math.floor(rng() * n));

export function sampleAffine(rng: () => number, opts: TransformOptions): Affine {
  const j = Math.floor(opts.jitter);
  const r = Math.floor(opts.rotate);
  return {
    dx: j > 0 ? pick(rng, 2 * j + 1) - j : 0,
    dy: j > 0 ? pick(rng, 2 * j + 1) - j : 0,
    scale: opts.scales.length ? opts.scales[pick(rng, opts.scales.length)] : 1,
    angle: r > 0 ? pick(rng, 2 * r + 1) - r : 0,
  };
}

export const isIdentity = (a: Affine) => a.angle === 0 && a.scale === 1 && a.dx === 0 && a.dy === 0;

/**
 * Bilinear sampling of a batch of warps: for output pixel p the source point is
 * R(-angle) * (p - centre - shift) / scale + centre. Each output pixel reads 4 corners; a corner
 * outside the image reads the extra row `n*h*w` (the fill value). Holds two tensors: dispose.
 */
export class Warp {
  /** [4 * n*h*w] flat pixel indices, corner-major. */
  readonly index: tf.Tensor1D;
  /** [4 * n*h*w, 1] bilinear weights, the 4 corners of a pixel summing to 1. */
  readonly weight: tf.Tensor2D;

  constructor(readonly affines: readonly Affine[], readonly h: number, readonly w: number) {
    const n = affines.length;
    const m = n * h * w;
    const index = new Int32Array(4 * m);
    const weight = new Float32Array(4 * m);
    const cy = (h - 1) / 2;
    const cx = (w - 1) / 2;
    affines.forEach((a, i) => {
      const th = (a.angle * Math.PI) / 180;
      const cos = Math.cos(th);
      const sin = Math.sin(th);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const u = (x - cx - a.dx) / a.scale;
          const v = (y - cy - a.dy) / a.scale;
          const sx = cos * u + sin * v + cx;
          const sy = -sin * u + cos * v + cy;
          const x0 = Math.floor(sx);
          const y0 = Math.floor(sy);
          const fx = sx - x0;
          const fy = sy - y0;
          const p = (i * h + y) * w + x;
          const put = (k: number, yy: number, xx: number, wt: number) => {
            index[k * m + p] = yy >= 0 && yy < h && xx >= 0 && xx < w ? (i * h + yy) * w + xx : m;
            weight[k * m + p] = wt;
          };
          put(0, y0, x0, (1 - fy) * (1 - fx));
          put(1, y0, x0 + 1, (1 - fy) * fx);
          put(2, y0 + 1, x0, fy * (1 - fx));
          put(3, y0 + 1, x0 + 1, fy * fx);
        }
      }
    });
    this.index = tf.tensor1d(index, 'int32');
    this.weight = tf.tensor2d(weight, [4 * m, 1]);
  }

  /**
   * The warped images [n, h, w, c]; points outside take `fill` (per channel). The gradient is
   * a scatter-add (ScatterNd) of the weighted output gradient: tfjs's own gather gradient runs
   * UnsortedSegmentSum, which on wasm is the cpu kernel at O(segments * n) (minutes at 224 px).
   */
  apply(images: tf.Tensor4D, fill: readonly number[]): tf.Tensor4D {
    const [n, h, w, c] = images.shape;
    const m = n * h * w;
    const { index, weight } = this;
    const fillT = fill.length === c ? [...fill] : new Array(c).fill(fill[0]);
    const sample = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const x = args[0] as tf.Tensor;
      const value = tf.tidy(() => {
        const flat = tf.concat([tf.reshape(tf.sub(x, fillT), [m, c]), tf.zeros([1, c])], 0);
        const summed = tf.sum(tf.reshape(tf.mul(tf.gather(flat, index), weight), [4, m, c]), 0);
        return tf.add(tf.reshape(summed, [n, h, w, c]), fillT);
      });
      const gradFunc = (dy: tf.Tensor) => tf.tidy(() => {
        const upd = tf.reshape(tf.mul(tf.reshape(dy, [1, m, c]), tf.reshape(weight, [4, m, 1])), [4 * m, c]);
        const acc = tf.scatterND(tf.reshape(index, [4 * m, 1]), upd, [m + 1, c]);
        return tf.reshape(tf.slice(acc, [0, 0], [m, c]), [n, h, w, c]);
      });
      return { value, gradFunc };
    });
    return sample(images) as tf.Tensor4D;
  }

  dispose(): void {
    tf.dispose([this.index, this.weight]);
  }
}

/** sum |x[i+1,j] - x[i,j]| + |x[i,j+1] - x[i,j]| over every image and channel (anisotropic TV). */
export function totalVariation(x: tf.Tensor4D): tf.Scalar {
  return tf.tidy(() => {
    const [, h, w] = x.shape;
    const dy = h > 1 ? tf.sum(tf.abs(tf.sub(x.slice([0, 1, 0, 0], [-1, h - 1, -1, -1]), x.slice([0, 0, 0, 0], [-1, h - 1, -1, -1])))) : tf.scalar(0);
    const dx = w > 1 ? tf.sum(tf.abs(tf.sub(x.slice([0, 0, 1, 0], [-1, -1, w - 1, -1]), x.slice([0, 0, 0, 0], [-1, -1, w - 1, -1])))) : tf.scalar(0);
    return tf.add(dy, dx) as tf.Scalar;
  });
}
