import { defineReluRuleMethod } from './attribution.ts';

/**
 * Guided backpropagation (Springenberg, Dosovitskiy, Brox & Riedmiller 2015, "Striving for
 * Simplicity: The All Convolutional Net", sec. 3.4): the input gradient of the pre-softmax class
 * score S_c with every ReLU's backward rule replaced by
 *   dx = max(dy, 0) * [x > 0]    (the standard forward mask and the deconvnet's rectification)
 * (ReLU only: ReLU6, LeakyReLU and other activations keep their gradient; see model/relu-rules.ts), as Captum's
 * GuidedBackprop. The rule is switched globally for the pass and always restored.
 * Output: g [H, W, C] as a signed gradient image (pytorch-grad-cam's deprocess_image, see
 * attribution.ts signedImage; raw [H, W, C]) and M = max_k |g_k| as a heatmap (raw [H, W]) drawn
 * as min(M / t, 1), t the value at which the sorted M sum to 98% of their total (Captum's
 * visualize_image_attr, outlier_perc = 2).
 */
export const guidedBackprop = defineReluRuleMethod({
  id: 'guided-backprop',
  title: 'Guided backpropagation',
  paper: 'Springenberg et al. 2015, Striving for Simplicity: The All Convolutional Net',
  rule: 'guided',
});
