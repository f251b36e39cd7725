import * as tf from '@tensorflow/tfjs';

/**
 * What a classifier's output means, read off the model's last operation.
 *
 *  - `softmax`: the model ends in a softmax over C >= 2 units; scores are its input (logits),
 *    p = softmax(scores).
 *  - `logits`: no output activation and C >= 2 units; p = softmax(scores), and the report says
 *    that convlens applied the softmax.
 *  - `binary`: one output unit z, ending in a sigmoid or in no activation (a logit trained with
 *    a sigmoid loss; softmax of a single value is always 1, so it is read as a sigmoid). Shown as
 *    two classes, [negative, positive], with scores [-z, z] and p = sigmoid(score) per class, so
 *    p = [1 - sigmoid(z), sigmoid(z)] exactly, the positive class's score is the model's own z
 *    (maps of it equal Captum's for target 0 of the raw model), and the negative class's score
 *    -z is its log-odds. Methods explain the positive class by default.
 *  - `multi-label`: C >= 2 sigmoid units; p_c = sigmoid(score_c), independently per class.
 */
export type HeadKind = 'softmax' | 'logits' | 'binary' | 'multi-label';

export interface Head {
  kind: HeadKind;
  /** The activation the model applies at its output (convlens splits it off; scores come before it). */
  activation: 'softmax' | 'sigmoid' | 'none';
  /** Output units of the model itself (1 for a binary head). */
  units: number;
}

/** The head for a model with `units` outputs ending in `activation`. */
export function detectHead(units: number, activation: Head['activation']): Head {
  if (units === 1) return { kind: 'binary', activation, units };
  if (activation === 'sigmoid') return { kind: 'multi-label', activation, units };
  return { kind: activation === 'softmax' ? 'softmax' : 'logits', activation, units };
}

/** Classes the report shows: the units, or two for a binary head. */
export function headClassCount(head: Head): number {
  return head.kind === 'binary' ? 2 : head.units;
}

/** The positive class of a binary head (index into the shown classes). */
export const BINARY_POSITIVE = 1;

/**
 * Class scores [n, classes] from the model's pre-activation outputs z [n, units]: z itself, or
 * [-z, z] for a binary head. Differentiable.
 */
export function scoresFromOutputs(head: Head, z: tf.Tensor2D): tf.Tensor2D {
  if (head.kind !== 'binary') return z;
  return tf.tidy(() => tf.concat([tf.neg(z), z], 1) as tf.Tensor2D);
}

/**
 * Class scores as a linear map of the outputs, scores = z M (M: [units, classes]), for methods
 * that read the output layer's weights (CAM): undefined where M is the identity.
 */
export function scoreMatrix(head: Head): number[][] | undefined {
  return head.kind === 'binary' ? [[-1, 1]] : undefined;
}

/** Probabilities [n, classes] from class scores: softmax, or a sigmoid per class. */
export function headProbabilities(head: Head, scores: tf.Tensor2D): tf.Tensor2D {
  return usesSigmoid(head) ? tf.sigmoid(scores) : tf.softmax(scores);
}

/** True where class probabilities are independent sigmoids (binary, multi-label). */
export function usesSigmoid(head: Head): boolean {
  return head.kind === 'binary' || head.kind === 'multi-label';
}

/** The class a sample is explained for by default: the top-1 prediction, or a binary head's positive class. */
export function defaultTarget(head: Head, probabilities: ArrayLike<number>): number {
  if (head.kind === 'binary') return BINARY_POSITIVE;
  let best = 0;
  for (let c = 1; c < probabilities.length; c++) if (probabilities[c] > probabilities[best]) best = c;
  return best;
}

/**
 * Weight of the contrast "why A and not B", S = w (S_A - S_B). 1, except for a binary head, whose
 * two scores are z and -z: there w = 1/2 makes S = +-z, the log-odds log(p_A / p_B), as S_A - S_B
 * is for a softmax head. For a multi-label head S_A - S_B is the difference of the two logits
 * (the probabilities are independent, so it is not a log-ratio of them).
 */
export function contrastWeight(head: Head): number {
  return head.kind === 'binary' ? 0.5 : 1;
}

/**
 * Class names for the report from the labels file (or none). A binary head takes either one
 * name, the positive class (the negative is "not <name>"), or two, [negative, positive] as
 * Keras' `class_names` order them (label 1 is the sigmoid's class). Returns a message instead
 * when the count does not fit.
 */
export function classNamesFor(head: Head, labels: readonly string[] | undefined): string[] | { problem: string } {
  if (head.kind === 'binary') {
    if (!labels) return ['negative', 'positive'];
    if (labels.length === 1) return [`not ${labels[0]}`, labels[0]];
    if (labels.length === 2) return [...labels];
    return { problem: `the labels file has ${labels.length} names but the model has one sigmoid output (a binary classifier); give the positive class, or two names: negative, then positive` };
  }
  if (!labels) return Array.from({ length: head.units }, (_, i) => `class ${i}`);
  if (labels.length !== head.units) {
    return { problem: `the labels file has ${labels.length} names but the model has ${head.units} outputs; give one name per output, in output order` };
  }
  return [...labels];
}

/** One sentence for the model card and the log. */
export function describeHead(head: Head, classes: readonly string[]): string {
  switch (head.kind) {
    case 'softmax':
      return `softmax over ${head.units} classes; maps explain the scores before the softmax (logits)`;
    case 'logits':
      return `${head.units} logits with no softmax in the model; probabilities are the softmax of the logits, computed by convlens`;
    case 'binary':
      return `binary: one ${head.activation === 'sigmoid' ? 'sigmoid unit' : 'logit with no activation (read as a sigmoid)'} z; p(${classes[BINARY_POSITIVE]}) = sigmoid(z), `
        + `p(${classes[0]}) = 1 - sigmoid(z); maps explain ${classes[BINARY_POSITIVE]} (score z) by default, ${classes[0]} has score -z`;
    case 'multi-label':
      return `multi-label: ${head.units} independent sigmoid units; p(c) = sigmoid(logit_c), a class is predicted where p >= 0.5`;
  }
}
