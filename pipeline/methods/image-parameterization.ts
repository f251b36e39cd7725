import * as tf from '@tensorflow/tfjs';
import { normals } from '../random.ts';
import { gaussianBlur } from '../blur.ts';

/**
 * Image parameterisations for activation maximisation, in the model's preprocessed space.
 *
 * - `pixel`: the parameter is the image itself [n, h, w, c] (Simonyan et al. 2014), kept inside
 *   the valid range by clipping after each step (projected gradient ascent).
 * - `fft`: Lucid's decorrelated parameterisation (Olah et al. 2017, "Feature Visualization";
 *   lucid.optvis.param.spatial.fft_image + color.to_valid_rgb). The parameter is a spectrum
 *   P [2 (re, im), n, c, h, w/2+1];
 *     t   = irfft2d(P * s) / 4,   s[k,l] = sqrt(h*w) / max(|f[k,l]|, 1/max(h,w))^decay
 *     t'  = t @ M^T               (3 channels only; M = Lucid's ImageNet colour-correlation square
 *                                  root divided by its largest column norm; gray: no colour step)
 *     img = lo + (hi - lo) * sigmoid(t')      (per channel: the valid range of preprocessed pixels)
 *   with |f| the frequency in cycles per pixel (numpy's fftfreq convention).
 *   Differences from Lucid: for an odd width Lucid keeps w/2+2 frequency columns and crops the
 *   (w+1)-wide result; here the w/2+1 columns of the exact real inverse are kept. BGR models get
 *   the colour matrix with its rows reversed, so the result is the same picture.
 *
 * tfjs's `irfft`/`ifft` cannot be used: on the wasm backend every complex64 op fails ("Unknown
 * dtype complex64"), and no backend has gradients for Complex/Real/FFT/IFFT. The 2-D real DFT is
 * therefore computed as products with cos/sin matrices (exact up to float32 rounding and
 * differentiable everywhere): O(h*w*(h + w)) per channel, negligible beside a CNN pass.
 */

/** Lucid's `color_correlation_svd_sqrt` (ImageNet RGB). */
export const LUCID_COLOR_CORRELATION_SQRT = [
  [0.26, 0.09, 0.02],
  [0.27, 0.0, -0.05],
  [0.27, -0.09, 0.03],
] as const;

/** M / max column norm, rows in the model's channel order. */
export function colorMatrix(channelOrder: 'rgb' | 'bgr'): number[][] {
  const m = LUCID_COLOR_CORRELATION_SQRT.map((r) => [...r]);
  let maxNorm = 0;
  for (let j = 0; j < 3; j++) maxNorm = Math.max(maxNorm, Math.hypot(m[0][j], m[1][j], m[2][j]));
  const norm = m.map((r) => r.map((v) => v / maxNorm));
  return channelOrder === 'bgr' ? norm.reverse() : norm;
}

/** |f| in cycles per pixel for the rfft2d grid [h, w/2+1] (numpy fftfreq), row-major. */
export function rfft2dFreqs(h: number, w: number): Float64Array {
  const wf = Math.floor(w / 2) + 1;
  const out = new Float64Array(h * wf);
  for (let k = 0; k < h; k++) {
    const fy = (k <= (h - 1) / 2 ? k : k - h) / h;
    for (let l = 0; l < wf; l++) out[k * wf + l] = Math.hypot(fy, l / w);
  }
  return out;
}

/** Lucid's spectrum scale sqrt(h*w) / max(|f|, 1/max(h,w))^decay on the [h, w/2+1] grid. */
export function spectrumScale(h: number, w: number, decay = 1): Float32Array {
  const f = rfft2dFreqs(h, w);
  const floor = 1 / Math.max(h, w);
  return Float32Array.from(f, (v) => Math.sqrt(h * w) / Math.max(v, floor) ** decay);
}

/**
 * The real 2-D DFT of [b, h, w] and its inverse, over the last two axes, as tfjs's (and numpy's)
 * rfft2d/irfft2d: forward unnormalised, inverse divided by h*w; the inverse ignores the imaginary
 * parts of the self-conjugate bins, as irfft does.
 */
export class RealDft2d {
  readonly wf: number;
  private readonly cosH: tf.Tensor2D;
  private readonly sinH: tf.Tensor2D;
  private readonly fwdRe: tf.Tensor2D;
  private readonly fwdIm: tf.Tensor2D;
  private readonly invRe: tf.Tensor2D;
  private readonly invIm: tf.Tensor2D;

  constructor(readonly h: number, readonly w: number) {
    const wf = (this.wf = Math.floor(w / 2) + 1);
    const angle = (a: number, b: number, n: number) => (2 * Math.PI * ((a * b) % n)) / n;
    const cosH = new Float32Array(h * h);
    const sinH = new Float32Array(h * h);
    for (let m = 0; m < h; m++) for (let k = 0; k < h; k++) {
      cosH[m * h + k] = Math.cos(angle(m, k, h));
      sinH[m * h + k] = Math.sin(angle(m, k, h));
    }
    const fwdRe = new Float32Array(w * wf);
    const fwdIm = new Float32Array(w * wf);
    const invRe = new Float32Array(wf * w);
    const invIm = new Float32Array(wf * w);
    for (let l = 0; l < wf; l++) {
      const c = l === 0 || 2 * l === w ? 1 : 2;
      for (let n = 0; n < w; n++) {
        const a = angle(l, n, w);
        fwdRe[n * wf + l] = Math.cos(a);
        fwdIm[n * wf + l] = -Math.sin(a);
        invRe[l * w + n] = (c * Math.cos(a)) / (h * w);
        invIm[l * w + n] = (-c * Math.sin(a)) / (h * w);
      }
    }
    this.cosH = tf.tensor2d(cosH, [h, h]);
    this.sinH = tf.tensor2d(sinH, [h, h]);
    this.fwdRe = tf.tensor2d(fwdRe, [w, wf]);
    this.fwdIm = tf.tensor2d(fwdIm, [w, wf]);
    this.invRe = tf.tensor2d(invRe, [wf, w]);
    this.invIm = tf.tensor2d(invIm, [wf, w]);
  }

  /** x [b, h, w] -> spectrum { re, im } [b, h, w/2+1]. */
  rfft2d(x: tf.Tensor3D): { re: tf.Tensor3D; im: tf.Tensor3D } {
    const [b, h, w] = x.shape;
    const wf = this.wf;
    const [re, im] = tf.tidy(() => {
      const flat = tf.reshape(x, [b * h, w]) as tf.Tensor2D;
      const toRows = (z: tf.Tensor2D) => tf.reshape(tf.transpose(tf.reshape(z, [b, h, wf]), [1, 0, 2]), [h, b * wf]) as tf.Tensor2D;
      const zr = toRows(tf.matMul(flat, this.fwdRe));
      const zi = toRows(tf.matMul(flat, this.fwdIm));
      // multiply by e^{-2 pi i k m / h} along h
      const xr = tf.add(tf.matMul(this.cosH, zr), tf.matMul(this.sinH, zi));
      const xi = tf.sub(tf.matMul(this.cosH, zi), tf.matMul(this.sinH, zr));
      const back = (z: tf.Tensor) => tf.transpose(tf.reshape(z, [h, b, wf]), [1, 0, 2]) as tf.Tensor3D;
      return [back(xr), back(xi)];
    });
    return { re, im };
  }

  /** Spectrum re, im [b, h, w/2+1] -> real x [b, h, w]. */
  irfft2d(re: tf.Tensor3D, im: tf.Tensor3D): tf.Tensor3D {
    const [b, h, wf] = re.shape;
    const w = this.w;
    return tf.tidy(() => {
      const toRows = (z: tf.Tensor3D) => tf.reshape(tf.transpose(z, [1, 0, 2]), [h, b * wf]) as tf.Tensor2D;
      const xr = toRows(re);
      const xi = toRows(im);
      // multiply by e^{+2 pi i k m / h} along h
      const yr = tf.sub(tf.matMul(this.cosH, xr), tf.matMul(this.sinH, xi));
      const yi = tf.add(tf.matMul(this.cosH, xi), tf.matMul(this.sinH, xr));
      const back = (z: tf.Tensor) => tf.reshape(tf.transpose(tf.reshape(z, [h, b, wf]), [1, 0, 2]), [b * h, wf]) as tf.Tensor2D;
      const out = tf.add(tf.matMul(back(yr), this.invRe), tf.matMul(back(yi), this.invIm));
      return tf.reshape(out, [b, h, w]) as tf.Tensor3D;
    });
  }

  dispose(): void {
    tf.dispose([this.cosH, this.sinH, this.fwdRe, this.fwdIm, this.invRe, this.invIm]);
  }
}

/** Valid range of preprocessed pixels, per channel. */
export interface InputRange {
  lo: number[];
  hi: number[];
}

export type ParameterizationKind = 'pixel' | 'fft';

export interface ParameterizationOptions {
  kind: ParameterizationKind;
  /** Images optimised together. */
  n: number;
  h: number;
  w: number;
  c: number;
  range: InputRange;
  channelOrder: 'rgb' | 'bgr';
  /** Spectrum decay power (fft); Lucid: 1. */
  decay?: number;
  /** Initial spread: the spectrum's standard deviation (fft, Lucid: 0.01), or a fraction of the range (pixel). */
  initScale?: number;
}

/**
 * A parameterised batch of images. `image(p)` is differentiable in p; `project` and `blur` act
 * on the parameter between steps. The caller owns every tensor returned.
 */
export class ImageParameterization {
  readonly kind: ParameterizationKind;
  readonly shape: number[];
  private readonly opts: Required<ParameterizationOptions>;
  private readonly dft?: RealDft2d;
  private readonly scale?: tf.Tensor2D;
  private readonly color?: tf.Tensor2D;
  private readonly lo: tf.Tensor1D;
  private readonly span: tf.Tensor1D;
  private readonly hi: tf.Tensor1D;

  constructor(opts: ParameterizationOptions) {
    this.opts = { decay: 1, initScale: 0.01, ...opts };
    const { kind, n, h, w, c, range } = this.opts;
    this.kind = kind;
    this.lo = tf.tensor1d(range.lo);
    this.hi = tf.tensor1d(range.hi);
    this.span = tf.tensor1d(range.hi.map((v, i) => v - range.lo[i]));
    if (kind === 'fft') {
      this.dft = new RealDft2d(h, w);
      this.shape = [2, n, c, h, this.dft.wf];
      this.scale = tf.tensor2d(spectrumScale(h, w, this.opts.decay), [h, this.dft.wf]);
      if (c === 3) this.color = tf.tidy(() => tf.transpose(tf.tensor2d(colorMatrix(opts.channelOrder))) as tf.Tensor2D);
    } else {
      this.shape = [n, h, w, c];
    }
  }

  /**
   * The initial parameter, image i drawn from rngs[i] alone (so an image does not depend on the
   * others in the batch): a normal spectrum of standard deviation initScale (fft), or the range
   * centre plus normal noise of initScale * (hi - lo) (pixel).
   */
  init(rngs: readonly (() => number)[]): tf.Tensor {
    const per = this.shape.reduce((a, b) => a * b, 1) / this.opts.n;
    return tf.tidy(() => {
      if (this.kind === 'fft') {
        const parts = rngs.map((r) => tf.reshape(tf.tensor(normals(r, per)), [2, 1, ...this.shape.slice(2)]));
        return tf.mul(tf.concat(parts, 1), this.opts.initScale);
      }
      const z = tf.concat(rngs.map((r) => tf.reshape(tf.tensor(normals(r, per)), [1, ...this.shape.slice(1)])), 0);
      const mid = tf.add(this.lo, tf.mul(this.span, 0.5));
      return tf.add(mid, tf.mul(z, tf.mul(this.span, this.opts.initScale)));
    });
  }

  /** Pre-sigmoid, pre-colour image t = irfft2d(P * s) / 4, [n, h, w, c] (fft only). */
  spatial(p: tf.Tensor): tf.Tensor4D {
    const { n, c, h, w } = this.opts;
    const wf = this.dft!.wf;
    return tf.tidy(() => {
      const scaled = tf.mul(p, this.scale!);
      const re = tf.reshape(tf.slice(scaled, [0, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [n * c, h, wf]) as tf.Tensor3D;
      const im = tf.reshape(tf.slice(scaled, [1, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [n * c, h, wf]) as tf.Tensor3D;
      const x = tf.reshape(this.dft!.irfft2d(re, im), [n, c, h, w]);
      return tf.div(tf.transpose(x, [0, 2, 3, 1]), 4) as tf.Tensor4D;
    });
  }

  /** The images [n, h, w, c] in preprocessed space. */
  image(p: tf.Tensor): tf.Tensor4D {
    if (this.kind === 'pixel') return tf.clone(p) as tf.Tensor4D;
    const { n, c, h, w } = this.opts;
    return tf.tidy(() => {
      let t: tf.Tensor = this.spatial(p);
      if (this.color) t = tf.reshape(tf.matMul(tf.reshape(t, [n * h * w, c]), this.color), [n, h, w, c]);
      return tf.add(this.lo, tf.mul(this.span, tf.sigmoid(t))) as tf.Tensor4D;
    });
  }

  /** Keeps the parameter valid after a step: clipping to the range per channel (pixel). */
  project(p: tf.Tensor): tf.Tensor {
    if (this.kind === 'fft') return tf.clone(p);
    return tf.tidy(() => tf.minimum(tf.maximum(p, this.lo), this.hi));
  }

  /**
   * Gaussian blur of the parameter by `sigma` px: a reflected-border convolution of the pixels
   * (pixel), or the Gaussian transfer function exp(-2 pi^2 sigma^2 |f|^2) on the spectrum (fft),
   * which is a circular blur of the pre-sigmoid image.
   */
  blur(p: tf.Tensor, sigma: number): tf.Tensor {
    if (this.kind === 'pixel') return gaussianBlur(p as tf.Tensor4D, sigma, 'three-sigma');
    const { h, w } = this.opts;
    const f = rfft2dFreqs(h, w);
    const g = Float32Array.from(f, (v) => Math.exp(-2 * Math.PI * Math.PI * sigma * sigma * v * v));
    return tf.tidy(() => tf.mul(p, tf.tensor2d(g, [h, this.dft!.wf])));
  }

  dispose(): void {
    this.dft?.dispose();
    tf.dispose([this.lo, this.hi, this.span, ...(this.scale ? [this.scale] : []), ...(this.color ? [this.color] : [])]);
  }
}

/**
 * Spectrum <-> image for one batch [n, h, w, c] without the sigmoid and colour steps:
 * `scaled: false` is the plain rfft2d/irfft2d per channel; `scaled: true` includes Lucid's
 * 1/f scale and the division by 4 (the `t` of the fft parameterisation).
 */
export function imageToSpectrum(img: tf.Tensor4D, opts: { scaled: boolean; decay?: number }): tf.Tensor {
  const [n, h, w, c] = img.shape;
  const dft = new RealDft2d(h, w);
  try {
    return tf.tidy(() => {
      const planes = tf.reshape(tf.transpose(img, [0, 3, 1, 2]), [n * c, h, w]) as tf.Tensor3D;
      const { re, im } = dft.rfft2d(planes);
      let spec: tf.Tensor = tf.reshape(tf.stack([re, im]), [2, n, c, h, dft.wf]);
      if (opts.scaled) spec = tf.div(tf.mul(spec, 4), tf.tensor2d(spectrumScale(h, w, opts.decay ?? 1), [h, dft.wf]));
      return spec;
    });
  } finally {
    dft.dispose();
  }
}

export function spectrumToImage(spec: tf.Tensor, w: number, opts: { scaled: boolean; decay?: number }): tf.Tensor4D {
  const [, n, c, h, wf] = spec.shape;
  const dft = new RealDft2d(h, w);
  try {
    return tf.tidy(() => {
      const s = opts.scaled ? tf.div(tf.mul(spec, tf.tensor2d(spectrumScale(h, w, opts.decay ?? 1), [h, wf])), 4) : spec;
      const re = tf.reshape(tf.slice(s, [0, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [n * c, h, wf]) as tf.Tensor3D;
      const im = tf.reshape(tf.slice(s, [1, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [n * c, h, wf]) as tf.Tensor3D;
      return tf.transpose(tf.reshape(dft.irfft2d(re, im), [n, c, h, w]), [0, 2, 3, 1]) as tf.Tensor4D;
    });
  } finally {
    dft.dispose();
  }
}
