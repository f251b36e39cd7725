// Entry of a worker thread: loads the TypeScript body through tsx, as bin/convlens.mjs does.
import { parentPort, workerData } from 'node:worker_threads';
import { tsImport } from 'tsx/esm/api';

const { serve } = await tsImport('./worker.ts', import.meta.url);
await serve(parentPort, workerData);
