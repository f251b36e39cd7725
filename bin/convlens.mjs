#!/usr/bin/env node
// convlens is written in TypeScript and runs through tsx, so there is no build step to forget.
import { tsImport } from 'tsx/esm/api';

const cli = await tsImport('../pipeline/cli.ts', import.meta.url);
process.exitCode = await cli.main(process.argv.slice(2));
