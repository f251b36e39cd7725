/** Types for tsne-js 1.0.3 (exact O(N^2) t-SNE; the package ships none). */
declare module 'tsne-js' {
  import { EventEmitter } from 'node:events';

  interface TSNEConfig {
    dim?: number;
    perplexity?: number;
    earlyExaggeration?: number;
    learningRate?: number;
    nIter?: number;
    metric?: 'euclidean' | 'manhattan' | 'jaccard' | 'dice';
  }

  export default class TSNE extends EventEmitter {
    constructor(config?: TSNEConfig);
    init(opts: { data: number[][]; type: 'dense' | 'sparse' }): void;
    /** Returns [final KL divergence, last iteration]. */
    run(): [number, number];
    getOutput(): number[][];
    /** ndarray [n, dim], filled with Math.random noise by `init`. */
    outputEmbedding: { data: Float64Array; shape: number[] };
  }
}
