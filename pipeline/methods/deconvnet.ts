import { defineReluRuleMethod } from './attribution.ts';

/**
 * Deconvnet (Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks"), as an
 * input gradient of the pre-softmax class score S_c with the ReLU backward rule replaced by
 *   dx = max(dy, 0)            (the backward signal is rectified; the forward mask is ignored)
 * for every ReLU of the model (other activations keep their gradient; see model/relu-rules.ts), as Captum's
 * Deconvolution. Simonyan et al. 2014 (sec. 4) showed the deconvnet differs from backpropagation
 * only in this rule (unpooling with switches is the max-pool gradient; transposed filters are the
 * conv gradient). The paper projects one feature map; like Captum we start from the class score.
 * Output: g [H, W, C] as a signed gradient image (pytorch-grad-cam's deprocess_image, see
 * attribution.ts signedImage; raw [H, W, C]) and M = max_k |g_k| as a heatmap (raw [H, W]) drawn
 * as min(M / t, 1), t the value at which the sorted M sum to 98% of their total (Captum's
 * visualize_image_attr, outlier_perc = 2).
 */
export const deconvnet = defineReluRuleMethod({
  id: 'deconvnet',
  title: 'Deconvnet',
  paper: 'Zeiler & Fergus 2014, Visualizing and Understanding Convolutional Networks',
  rule: 'deconvnet',
});
