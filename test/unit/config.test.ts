import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULTS, configJsonSchema, parseConfigText } from '../../pipeline/config.ts';
import { METHOD_IDS } from '../../pipeline/methods/registry.ts';

const FILE = '/project/config/viz.yaml';
const minimal = `model:\n  path: ../models/demo-mnist\ndata:\n  samples:\n    folder: ../samples\n`;

function problems(text: string): string[] {
  try {
    parseConfigText(text, FILE);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

describe('config', () => {
  it('fills every default from the one DEFAULTS object', () => {
    const { config, dir, hash } = parseConfigText(minimal, FILE);
    expect(dir).toBe('/project/config');
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(config.release).toBe(DEFAULTS.release);
    expect(config.compute).toEqual(DEFAULTS.compute);
    expect(config.input).toEqual(DEFAULTS.input);
    expect(config.output).toEqual(DEFAULTS.output);
    expect(config.data.samples.limit).toBe(DEFAULTS.data.samples.limit);
    expect(Object.keys(config.methods).sort()).toEqual([...METHOD_IDS].sort());
    expect(config.methods['grad-cam']).toEqual(DEFAULTS.methods['grad-cam']);
  });

  it('hashes the validated config, not the text', () => {
    const a = parseConfigText(minimal, FILE).hash;
    const b = parseConfigText(`${minimal}# a comment\ncompute:\n  batchSize: ${DEFAULTS.compute.batchSize}\n`, FILE).hash;
    const c = parseConfigText(`${minimal}compute:\n  batchSize: 7\n`, FILE).hash;
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });

  it('leaves out of the hash what cannot change the results: output.dir, release, site, compute.workers', () => {
    const a = parseConfigText(minimal, FILE).hash;
    for (const extra of ['output:\n  dir: elsewhere\n', 'release: v2\n', 'site:\n  base: /repo/\n', 'compute:\n  workers: 3\n']) {
      expect(parseConfigText(`${minimal}${extra}`, FILE).hash, extra).toBe(a);
    }
    expect(parseConfigText(`${minimal}output:\n  colormap: gray\n`, FILE).hash).not.toBe(a);
  });

  it('names the key and the value on a wrong type', () => {
    expect(problems(`${minimal}compute:\n  batchSize: lots\n`)).toEqual([
      'viz.yaml: compute.batchSize: expected a number, got string "lots"',
    ]);
  });

  it('suggests the nearest key for an unknown key', () => {
    expect(problems(`${minimal}methods:\n  grad-cam:\n    layr: conv5\n`)).toEqual([
      'viz.yaml: methods.grad-cam.layr: unknown key "layr"; did you mean "layer"? (known: enabled, layer, target, opacity)',
    ]);
    expect(problems(`${minimal}methods:\n  saliency:\n    alpha: 0.3\n`)).toEqual([
      'viz.yaml: methods.saliency.alpha: "alpha" is now called "opacity"; rename the key',
    ]);
    expect(problems(`${minimal}methods:\n  gradcam: {}\n`)).toEqual([
      `viz.yaml: methods.gradcam: unknown key "gradcam"; did you mean "grad-cam"? (known: ${METHOD_IDS.join(', ')})`,
    ]);
  });

  it('reports a missing required key and an enum mismatch, one line each', () => {
    expect(problems('data:\n  samples:\n    folder: x\ncompute:\n  backend: gpu\n')).toEqual([
      'viz.yaml: model: missing; a mapping (key: value lines) is required',
      'viz.yaml: compute.backend: expected one of "auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"; got string "gpu"',
    ]);
  });

  it('requires exactly one data source', () => {
    expect(problems('model:\n  path: m\ndata:\n  samples:\n    folder: a\n    list: b.csv\n')).toEqual([
      'viz.yaml: data.samples: give exactly one of folder, list or files',
    ]);
  });

  it('reports YAML syntax errors with the line', () => {
    const p = problems('model:\n  path: [unclosed\n');
    expect(p).toHaveLength(1);
    expect(p[0]).toMatch(/^viz\.yaml: line \d+: YAML syntax error: /);
  });

  it('prints one line per problem and a hint naming the schema file', () => {
    try {
      parseConfigText(`${minimal}compute:\n  batchSize: 0\nfoo: 1\n`, FILE);
      expect.unreachable();
    } catch (err) {
      const e = err as ConfigError;
      expect(e.message.split('\n')).toEqual([
        'viz.yaml: compute.batchSize: must be > 0',
        'viz.yaml: foo: unknown key "foo"; did you mean "model"? (known: release, model, input, data, compute, output, site, methods, metrics)',
      ]);
      expect(e.hint).toContain('viz.schema.json');
    }
  });

  it('emits a JSON Schema with every method section for editors', () => {
    const schema = configJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> };
    expect(Object.keys(schema.properties.methods.properties ?? {}).sort()).toEqual([...METHOD_IDS].sort());
    expect(schema.properties.compute.properties).toHaveProperty('backend');
  });
});

describe('committed config files', () => {
  it('config/viz.schema.json is what `npm run schema` writes now', async () => {
    const { readFile } = await import('node:fs/promises');
    const committed = JSON.parse(await readFile(new URL('../../config/viz.schema.json', import.meta.url), 'utf8'));
    expect(committed).toEqual(configJsonSchema());
  });

  it('config/viz.yaml (the embedded default) validates', async () => {
    const { loadConfig } = await import('../../pipeline/config.ts');
    const { config } = await loadConfig(new URL('../../config/viz.yaml', import.meta.url).pathname);
    expect(config.model.path).toBe('../models/demo-mnist');
    expect(config.data.dataset?.limit).toBe(2000);
  });
});
