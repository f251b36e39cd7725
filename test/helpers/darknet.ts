import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadModel } from '../../pipeline/model/load.ts';

/** The shared real-model fixtures (read in place; tests skip when they are absent). */
export const FIXTURES = resolve(import.meta.dirname, '../../../shared/fixtures');
export const haveDarknet = existsSync(resolve(FIXTURES, 'darknet-tiny/model.json'));

export async function loadDarknet() {
  const { adapter } = await loadModel(resolve(FIXTURES, 'darknet-tiny'));
  const labels = readFileSync(resolve(FIXTURES, 'darknet-tiny/labels.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  return { model: adapter, labels };
}

/** A photo as Darknet Tiny sees it: 224x224 RGB (stretched), pixel / 255, [1, 224, 224, 3]. */
export async function darknetInput(photo: string): Promise<tf.Tensor4D> {
  const { data } = await sharp(resolve(FIXTURES, 'photos', photo)).removeAlpha().resize(224, 224, { fit: 'fill' }).raw().toBuffer({ resolveWithObject: true });
  return tf.tensor4d(Float32Array.from(data, (v) => v / 255), [1, 224, 224, 3]);
}
