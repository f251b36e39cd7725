import * as tf from '@tensorflow/tfjs';

/**
 * Backward rules for ReLU. The rule is global state of the tfjs instance, not of a model: it is
 * the gradient registered for the Relu kernel, which tfjs looks up by kernel name, so while
 * `withReluRule` runs, every gradient of every model (LayersModel or GraphModel) on this thread
 * uses it. Worker threads have their own tfjs, hence their own rule.
 *
 * With x the forward input of a ReLU and g the gradient arriving from above:
 *   standard   dx = g * [x > 0]
 *   deconvnet  dx = max(g, 0)             (Zeiler & Fergus 2014: the backward signal is rectified,
 *                                          the forward mask is ignored)
 *   guided     dx = max(g, 0) * [x > 0]   (Springenberg et al. 2015: both)
 * These are Captum's rules: DeconvNet / GuidedBackprop override nn.ReLU modules only (tf-explain
 * overrides the Relu op only), so the other members of the family (ReLU6, LeakyReLU, ELU, and
 * torchvision's ReLU6, which an ONNX export writes as Clip(0, 6)) keep their standard gradient
 * under every rule, and a model without ReLUs (Darknet's leaky ReLUs, SiLU networks) gets its
 * vanilla gradient from both methods, as in Captum.
 */
export type ReluRule = 'standard' | 'deconvnet' | 'guided';
export const RELU_RULES: readonly ReluRule[] = ['standard', 'deconvnet', 'guided'];

type Saved = tf.Tensor[];
type Attrs = Record<string, unknown>;

const rules: Record<string, Record<Exclude<ReluRule, 'standard'>, (dy: tf.Tensor, x: tf.Tensor, attrs: Attrs) => tf.Tensor>> = {
  Relu: {
    deconvnet: (dy) => tf.relu(dy),
    guided: (dy, x) => tf.mul(tf.relu(dy), tf.step(x)),
  },
};

let current: ReluRule = 'standard';
/** The vanilla gradients, captured when tfjs registered them (before any rule was switched). */
const STANDARD = new Map(Object.keys(rules).map((k) => [k, tf.getGradient(k)] as const));

export function currentReluRule(): ReluRule {
  return current;
}

/**
 * Runs `fn` with `rule` as the Relu kernel's backward rule for the whole thread (every model), and
 * always restores the previous gradients (saved with tf.getGradient), also when `fn` throws.
 * Nested calls restore the outer rule; gradients computed concurrently elsewhere on the thread
 * while `fn` awaits also see `rule`.
 */
export async function withReluRule<T>(rule: ReluRule, fn: () => T | Promise<T>): Promise<T> {
  if (rule === current) return await fn();
  const saved = Object.keys(rules).map((k) => [k, tf.getGradient(k)] as const);
  const previous = current;
  try {
    for (const [kernelName] of saved) {
      if (rule === 'standard') {
        const std = STANDARD.get(kernelName);
        if (std) tf.registerGradient(std);
        continue;
      }
      const r = rules[kernelName][rule];
      tf.registerGradient({
        kernelName,
        inputsToSave: ['x'],
        gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: Saved, attrs: Attrs) => ({
          x: () => r(dy as tf.Tensor, saved[0], attrs),
        }),
      } as unknown as tf.GradConfig);
    }
    current = rule;
    return await fn();
  } finally {
    for (const [, original] of saved) if (original) tf.registerGradient(original);
    current = previous;
  }
}
