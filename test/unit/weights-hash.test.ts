import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readModelArtifacts, weightsHash } from '../../pipeline/model/io.ts';

const DEMO = resolve(import.meta.dirname, '../../models/demo-mnist');

describe('weights hash', () => {
  it('is SHA-256 of one JSON line of the specs, then the shard bytes (the committed demo model)', async () => {
    const { weightsSha256, artifacts } = await readModelArtifacts(DEMO);
    const json = JSON.parse(readFileSync(resolve(DEMO, 'model.json'), 'utf8')) as { weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[] };
    const specs = json.weightsManifest.flatMap((g) => g.weights);
    const expected = createHash('sha256')
      .update(`${JSON.stringify(specs.map((w) => [w.name, w.shape, w.dtype, null]))}\n`)
      .update(readFileSync(resolve(DEMO, 'weights.bin')))
      .digest('hex');
    expect(weightsSha256).toBe(expected);
    expect(artifacts.weightSpecs).toHaveLength(specs.length);
  });

  it('does not depend on the shard split; any changed byte, name or shape changes it', () => {
    const specs = [{ name: 'k', shape: [2, 2], dtype: 'float32' as const }];
    const bytes = new Uint8Array(Float32Array.from([1, 2, 3, 4]).buffer);
    const h = weightsHash(specs, [bytes]);
    expect(weightsHash(specs, [bytes.subarray(0, 5), bytes.subarray(5)])).toBe(h);
    const changed = bytes.slice();
    changed[15] ^= 1;
    expect(weightsHash(specs, [changed])).not.toBe(h);
    expect(weightsHash([{ ...specs[0], name: 'k2' }], [bytes])).not.toBe(h);
    expect(weightsHash([{ ...specs[0], shape: [4] }], [bytes])).not.toBe(h);
  });
});
