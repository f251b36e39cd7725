import * as tf from '@tensorflow/tfjs';
import { defineCamMethod } from './cam-base.ts';

/** pytorch-grad-cam's guard against a zero denominator. */
export const GRAD_CAM_PP_EPS = 1e-6;

/**
 * Grad-CAM++ (Chattopadhay et al. 2018, "Grad-CAM++: Improved Visual Explanations for Deep
 * Convolutional Networks"). For the activation A [h, w, K] of a layer and g = dy^c/dA, with y^c
 * the pre-softmax score of class c:
 *   alpha_ij^k = g_ij^k^2 / (2 g_ij^k^2 + (sum_ab A_ab^k) g_ij^k^3 + eps)   (0 where g_ij^k = 0)
 *   w_k        = sum_ij ReLU(g_ij^k) * alpha_ij^k
 *   L^c        = ReLU( sum_k w_k A^k )                                       [h, w]
 * This is the paper's closed form (eq. 19), which assumes the explained score is exp(y^c) so
 * that its 2nd and 3rd derivatives are powers of the first, evaluated, as pytorch-grad-cam's
 * GradCAMPlusPlus does, with the plain logit gradient g (no exp factor) and eps = 1e-6; this
 * follows pytorch-grad-cam exactly, so maps can be compared with it. Then bilinear upsampling
 * (half-pixel centres) and min-max scaling per image. Raw data: L^c at the layer's resolution.
 * Default layer: the last spatial layer (for a NiN/Darknet 1x1-conv head, its input).
 * Where the gradient is constant over positions (a linear head on global average pooling) and
 * g_k (sum A^k) is the same for every channel with g_k > 0, every alpha is the constant
 * 1 / (2 + g_k sum A^k) and L^c is Grad-CAM times h*w / (2 + g_k sum A^k).
 * The map, options and writing are the CAM base's (cam-base.ts); this file gives w.
 */
export const gradCamPlusPlus = defineCamMethod({
  id: 'grad-cam-plus-plus',
  title: 'Grad-CAM++',
  paper: 'Chattopadhay et al. 2018, Grad-CAM++: Improved Visual Explanations for Deep Convolutional Networks',
  channelWeights(A, g) {
    const g2 = tf.square(g);
    const g3 = tf.mul(g2, g);
    const sumA = tf.sum(A, [1, 2], true);
    const aij = tf.where(tf.notEqual(g, 0), tf.div(g2, tf.add(tf.add(tf.mul(2, g2), tf.mul(sumA, g3)), GRAD_CAM_PP_EPS)), tf.zerosLike(g));
    return tf.sum(tf.mul(tf.relu(g), aij), [1, 2], true);
  },
});
