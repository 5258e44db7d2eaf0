// npm run package [-- --target <vsce target> ...]: one .vsix per platform target, each carrying
// only its own onnxruntime binaries. Builds first (npm's prepackage step runs `npm run build`).
// Output: dist/deer-complete-<target>-<version>.vsix. Default target: this machine's.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// vsce target -> onnxruntime-node binary folder(s) and the files in it that are needed.
const BINARIES = {
  'linux-x64': ['linux/x64/onnxruntime_binding.node', 'linux/x64/libonnxruntime.so.1'],
  'linux-arm64': ['linux/arm64/onnxruntime_binding.node', 'linux/arm64/libonnxruntime.so.1'],
  'darwin-arm64': ['darwin/arm64/onnxruntime_binding.node', 'darwin/arm64/libonnxruntime.1.dylib'],
  'win32-x64': ['win32/x64/*'],
  'win32-arm64': ['win32/arm64/*'],
};

const args = process.argv.slice(2);
const targets = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--target') targets.push(args[++i]);
  else if (args[i] === '--all') targets.push(...Object.keys(BINARIES));
  else throw new Error(`unknown argument ${args[i]} (use --target T or --all)`);
}
if (targets.length === 0) targets.push(`${process.platform}-${process.arch}`);

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const base = readFileSync('.vscodeignore', 'utf8');
for (const f of ['dist/extension.js', 'dist/worker.js']) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
if (!existsSync('models/default')) console.warn('warning: models/default is missing: the .vsix will have no embedded model');

const tmp = mkdtempSync(join(tmpdir(), 'deer-vsix-'));
try {
  for (const target of targets) {
    const files = BINARIES[target];
    if (!files) throw new Error(`no onnxruntime binaries known for target ${target} (known: ${Object.keys(BINARIES).join(', ')})`);
    const ignoreFile = join(tmp, `${target}.vscodeignore`);
    writeFileSync(ignoreFile, base + files.map((f) => `!node_modules/onnxruntime-node/bin/napi-v6/${f}`).join('\n') + '\n');
    const out = join('dist', `${pkg.name}-${target}-${pkg.version}.vsix`);
    execFileSync(
      process.execPath,
      [
        'node_modules/@vscode/vsce/vsce', 'package',
        '--target', target, '--ignoreFile', ignoreFile, '--out', out,
        '--allow-missing-repository', '--skip-license', '--no-rewrite-relative-links',
      ],
      { stdio: 'inherit' },
    );
    console.log(`${out}: ${(statSync(out).size / 1024 / 1024).toFixed(1)} MB`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
