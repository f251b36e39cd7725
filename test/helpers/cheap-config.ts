/**
 * viz.yaml lines for whole-report tests: the wasm backend on the main thread, and the methods that
 * cost many passes at a few steps (the other methods' options follow these lines).
 */
export const CHEAP_RUN_YAML = [
  'compute:',
  '  backend: wasm',
  '  workers: 0',
  'methods:',
  '  integrated-gradients: { steps: 4 }',
  '  smoothgrad: { n: 2 }',
];
