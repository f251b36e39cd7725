import * as tf from '@tensorflow/tfjs';
import { ConvlensError } from './errors.ts';
import type { Logger } from './logger.ts';
import { installFastConvGradients } from './compute/conv-gradients.ts';

/** Backends a user can ask for in `compute.backend`. */
export const BACKEND_CHOICES = ['auto', 'tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
export type ConcreteBackend = Exclude<BackendChoice, 'auto'>;

const AUTO_ORDER: ConcreteBackend[] = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'];

const NATIVE_PACKAGE: Record<'tensorflow-gpu' | 'tensorflow', string> = {
  'tensorflow-gpu': '@tensorflow/tfjs-node-gpu',
  tensorflow: '@tensorflow/tfjs-node',
};

export interface BackendInfo {
  /** What the user's choice resolved to. */
  name: ConcreteBackend;
  /** The tfjs backend name (`tensorflow`, `wasm`, `cpu`). */
  tfjsBackend: string;
  tfjsVersion: string;
}

let active: BackendInfo | undefined;

/**
 * Selects and initialises the compute backend. `auto` tries the native GPU and CPU bindings,
 * then wasm, then the pure-JS cpu backend, and logs which one ran. An explicit choice that
 * cannot load is an error that says how to install it.
 */
export async function initBackend(choice: BackendChoice, logger: Logger): Promise<BackendInfo> {
  // Production mode: no debug checks, and no tfjs banner on stderr when the cpu backend first runs.
  tf.enableProdMode();
  const order = choice === 'auto' ? AUTO_ORDER : [choice];
  const failures: string[] = [];
  for (const name of order) {
    try {
      const info = await load(name, logger);
      active = info;
      logger.info(`backend: ${name}${choice === 'auto' ? ' (auto)' : ''}, tfjs ${info.tfjsVersion}`);
      return info;
    } catch (err) {
      const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
      failures.push(`${name}: ${why}`);
      logger.debug(`backend ${name} unavailable: ${why}`);
      if (choice !== 'auto') throw backendError(name, why);
    }
  }
  throw new ConvlensError(`no compute backend could be loaded (${failures.join('; ')})`, {
    hint: 'Reinstall the project dependencies with `npm ci`; the wasm and cpu backends ship with convlens.',
  });
}

export function activeBackend(): BackendInfo | undefined {
  return active;
}

function backendError(name: ConcreteBackend, why: string): ConvlensError {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const pkg = NATIVE_PACKAGE[name];
    return new ConvlensError(`viz.yaml: compute.backend: "${name}" could not be loaded (${why})`, {
      hint: `Install it with \`npm install ${pkg}@${tf.version.tfjs}\` (it downloads libtensorflow${
        name === 'tensorflow-gpu' ? ' and needs CUDA' : ''}), or set compute.backend to "auto", "wasm" or "cpu".`,
    });
  }
  return new ConvlensError(`viz.yaml: compute.backend: "${name}" could not be initialised (${why})`, {
    hint: 'Reinstall the project dependencies with `npm ci`, or set compute.backend to "cpu".',
  });
}

async function load(name: ConcreteBackend, logger: Logger): Promise<BackendInfo> {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    await import(NATIVE_PACKAGE[name]);
    if (!(await tf.setBackend('tensorflow'))) throw new Error('the tensorflow backend did not initialise');
  } else if (name === 'wasm') {
    await import('@tensorflow/tfjs-backend-wasm');
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
    bridgeLogger = logger;
    bridgeCpuKernelsToWasm();
    installFastConvGradients();
  } else {
    if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
  }
  await tf.ready();
  return { name, tfjsBackend: tf.getBackend(), tfjsVersion: tf.version.tfjs };
}

/**
 * Kernels that wasm lacks (Conv2DBackpropFilter, the depthwise backprops, UnsortedSegmentSum, ...)
 * and wasm's MaxPoolGrad, which gives no gradient to a window whose maximum is negative, run the
 * cpu kernel instead: inputs are copied out of the wasm heap, the cpu kernel runs, the result is
 * copied back. Results match the cpu backend exactly; only speed differs.
 */
const WASM_KERNELS_REPLACED = ['MaxPoolGrad'];
let bridged = false;

/**
 * MaxPoolGrad for wasm over typed arrays: dx[argmax of each window] += dy, with the argmax the
 * first strictly largest value in row-major window order (as tfjs-cpu and TensorFlow), padding
 * excluded. Replaces both wasm's kernel (wrong for windows whose max is negative) and the bridged
 * cpu kernel, whose per-element TensorBuffer access made it most of a Darknet backward pass.
 */
function maxPoolGradWasm({ inputs, attrs, backend }: { inputs: tf.NamedTensorInfoMap; attrs?: tf.NamedAttrMap; backend: unknown }): tf.TensorInfo {
  const wasm = backend as WasmLike;
  const { dy, input } = inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const a = (attrs ?? {}) as { filterSize: [number, number] | number; strides: [number, number] | number; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  // views into the wasm heap, taken after the output is allocated (allocation may grow the heap)
  const out = wasm.makeOutput(input.shape, 'float32');
  const x = wasm.typedArrayFromHeap(input) as Float32Array;
  const g = wasm.typedArrayFromHeap(dy) as Float32Array;
  const dx = wasm.typedArrayFromHeap(out) as Float32Array;
  dx.fill(0);
  const { batchSize, inHeight, inWidth, inChannels: C, outHeight, outWidth, strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth, dilationHeight, dilationWidth } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (effectiveFilterHeight === 2 && effectiveFilterWidth === 2 && strideHeight === 2 && strideWidth === 2 && top === 0 && left === 0
    && outHeight * 2 <= inHeight && outWidth * 2 <= inWidth) {
    maxPoolGrad2x2(x, g, dx, batchSize, inHeight, inWidth, C, outHeight, outWidth);
    return out;
  }
  for (let b = 0; b < batchSize; b++) {
    const xb = b * inHeight * inWidth * C;
    for (let yR = 0; yR < outHeight; yR++) {
      const r0 = yR * strideHeight - top;
      let rMin = r0;
      while (rMin < 0) rMin += dilationHeight;
      const rMax = Math.min(inHeight, r0 + effectiveFilterHeight);
      for (let yC = 0; yC < outWidth; yC++) {
        const c0 = yC * strideWidth - left;
        let cMin = c0;
        while (cMin < 0) cMin += dilationWidth;
        const cMax = Math.min(inWidth, c0 + effectiveFilterWidth);
        const gOff = ((b * outHeight + yR) * outWidth + yC) * C;
        for (let d = 0; d < C; d++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let r = rMin; r < rMax; r += dilationHeight) {
            for (let c = cMin; c < cMax; c += dilationWidth) {
              const i = xb + (r * inWidth + c) * C + d;
              if (x[i] > best) { best = x[i]; at = i; }
            }
          }
          if (at >= 0) dx[at] += g[gOff + d];
        }
      }
    }
  }
  return out;
}

/** Bridged cpu kernels that have run in this process (each is logged once at debug level). */
const bridgedUsed = new Set<string>();
/** The logger of the latest initBackend('wasm'). */
let bridgeLogger: Logger | undefined;

export function bridgedKernelsUsed(): ReadonlySet<string> {
  return bridgedUsed;
}

/** Kernels wasm runs through the cpu backend (empty until the wasm backend is first chosen). */
const bridgedNames = new Set<string>();

export function bridgedKernels(): ReadonlySet<string> {
  return bridgedNames;
}

/**
 * maxPoolGradWasm for the common 2x2 window, stride 2, windows inside the input: the same
 * argmax rule (first strictly largest in row-major window order), unrolled.
 */
function maxPoolGrad2x2(x: Float32Array, g: Float32Array, dx: Float32Array, n: number, H: number, W: number, C: number, oh: number, ow: number): void {
  const row = W * C;
  for (let b = 0; b < n; b++) {
    const xb = b * H * row;
    for (let yR = 0; yR < oh; yR++) {
      for (let yC = 0; yC < ow; yC++) {
        const i00 = xb + 2 * yR * row + 2 * yC * C;
        const gOff = ((b * oh + yR) * ow + yC) * C;
        for (let d = 0; d < C; d++) {
          const a = i00 + d;
          const bb = a + C;
          const c = a + row;
          const e = c + C;
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          if (x[a] > best) { best = x[a]; at = a; }
          if (x[bb] > best) { best = x[bb]; at = bb; }
          if (x[c] > best) { best = x[c]; at = c; }
          if (x[e] > best) at = e;
          if (at >= 0) dx[at] += g[gOff + d];
        }
      }
    }
  }
}

function bridgeCpuKernelsToWasm(): void {
  if (bridged) return;
  bridged = true;
  const cpuBackend = tf.findBackend('cpu') ?? undefined;
  if (!cpuBackend) throw new Error('the cpu backend is not registered');
  const wasmNames = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  for (const name of WASM_KERNELS_REPLACED) {
    if (wasmNames.has(name)) {
      tf.unregisterKernel(name, 'wasm');
      wasmNames.delete(name);
    }
  }
  tf.registerKernel({ kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGradWasm as unknown as tf.KernelFunc });
  wasmNames.add('MaxPoolGrad');
  for (const kernel of tf.getKernelsForBackend('cpu')) {
    if (wasmNames.has(kernel.kernelName)) continue;
    const cpuFunc = kernel.kernelFunc;
    bridgedNames.add(kernel.kernelName);
    tf.registerKernel({
      kernelName: kernel.kernelName,
      backendName: 'wasm',
      kernelFunc: ({ inputs, attrs, backend }) => {
        if (!bridgedUsed.has(kernel.kernelName)) {
          bridgedUsed.add(kernel.kernelName);
          bridgeLogger?.debug(`wasm has no ${kernel.kernelName} kernel: running the cpu backend's (slower; inputs copied out of the wasm heap and back)`);
        }
        const wasm = backend as unknown as WasmLike;
        const cpu = cpuBackend as unknown as WasmLike;
        const cpuInputs: Record<string, tf.TensorInfo> = {};
        for (const [key, t] of Object.entries(inputs)) {
          if (!t) continue;
          cpuInputs[key] = { dataId: cpu.write(wasm.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype };
        }
        try {
          const out = cpuFunc({ inputs: cpuInputs, attrs: attrs ?? {}, backend: cpuBackend });
          const outs = Array.isArray(out) ? out : [out];
          const results = outs.map((o) => {
            const r = wasm.makeOutput(o.shape, o.dtype, undefined, cpu.readSync(o.dataId));
            cpu.disposeData(o.dataId, true);
            return r;
          });
          return Array.isArray(out) ? results : results[0];
        } finally {
          for (const t of Object.values(cpuInputs)) cpu.disposeData(t.dataId, true);
        }
      },
    });
  }
}

interface WasmLike {
  write(values: unknown, shape: number[], dtype: tf.DataType): object;
  readSync(dataId: object): tf.backend_util.BackendValues;
  disposeData(dataId: object, force?: boolean): boolean;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: unknown): tf.TensorInfo;
  /** A view (no copy) of a tensor's data in the wasm heap. */
  typedArrayFromHeap(t: tf.TensorInfo): tf.backend_util.TypedArray;
}
