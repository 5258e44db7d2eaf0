// Bundles the extension, the inference worker, the CLI and the test suites into dist/.
import { build } from 'esbuild';
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';

const testEntries = (dir) =>
  existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => join(dir, f)) : [];

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: true,
  external: ['vscode', 'onnxruntime-node'],
  logLevel: 'warning',
};

const entries = [
  { in: 'src/extension.ts', out: 'extension' },
  { in: 'src/worker/engineWorker.ts', out: 'worker' },
  { in: 'src/cli/deer.ts', out: 'cli' },
  { in: 'src/cli/latency.ts', out: 'bench-latency' },
  { in: 'src/cli/soak.ts', out: 'bench-soak' },
  { in: 'src/cli/confidence.ts', out: 'bench-confidence' },
  { in: 'src/cli/infill.ts', out: 'bench-infill' },
].filter((e) => existsSync(e.in));

await build({ ...common, entryPoints: entries, outdir: 'dist' });

const tests = [...testEntries('test/engine'), ...testEntries('test/editor'), ...testEntries('test/hf'), ...testEntries('test/vscode/suite')];
if (tests.length > 0) {
  await build({ ...common, entryPoints: tests, outdir: 'dist/test', outbase: 'test' });
}
