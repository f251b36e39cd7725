import type * as tf from '@tensorflow/tfjs';
import type { OnnxNode } from './decode.ts';
import type { Translator } from './translator.ts';

/** How one ONNX operator is translated. */
export interface OpDef {
  /**
   * Why this node cannot be translated, judged from its attributes alone (run over the whole
   * graph before any work, so every offending node is named at once); undefined when it can.
   */
  check?(n: OnnxNode, opset: number): string | undefined;
  /**
   * The outputs when every input is known at translation time (ONNX layout). Ops without it
   * are always emitted as graph nodes.
   */
  fold?(inputs: (tf.Tensor | undefined)[], n: OnnxNode, opset: number): tf.Tensor[];
  /** Emits graph nodes for the current node (tr.node) and sets its outputs' Values. */
  emit(tr: Translator): void;
}

export type OpTable = Record<string, OpDef>;
