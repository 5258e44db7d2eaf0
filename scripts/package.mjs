// npm run package [-- --target <vsce target> | --all]: one .vsix per platform target, each
// carrying only its own onnxruntime binaries. npm's prepackage step builds first.
// Output: dist/deer-complete-<target>-<version>.vsix (default target: this machine's).
//
// vsce crawls the whole folder it packages, and this working tree holds tens of thousands of
// files that never ship (training data, tool caches). So the candidates (the manifest, dist/,
// media/, models/default/, the production dependencies) are hard-linked into a staging folder
// and vsce runs there, with .vscodeignore (plus the target's binaries) deciding what goes in.
import { execFileSync, execSync } from 'node:child_process';
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

// vsce target -> the onnxruntime-node binaries it needs (under bin/napi-v6/).
const BINARIES = {
  'linux-x64': ['linux/x64/onnxruntime_binding.node', 'linux/x64/libonnxruntime.so.1'],
  'linux-arm64': ['linux/arm64/onnxruntime_binding.node', 'linux/arm64/libonnxruntime.so.1'],
  'darwin-arm64': ['darwin/arm64/onnxruntime_binding.node', 'darwin/arm64/libonnxruntime.1.dylib'],
  'win32-x64': ['win32/x64/*'],
  'win32-arm64': ['win32/arm64/*'],
};

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
process.chdir(ROOT);
const args = process.argv.slice(2);
const targets = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--target') targets.push(args[++i]);
  else if (args[i] === '--all') targets.push(...Object.keys(BINARIES));
  else throw new Error(`unknown argument ${args[i]} (use --target T or --all)`);
}
if (targets.length === 0) targets.push(`${process.platform}-${process.arch}`);

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
// The embedded model: models/default, or (to test the packaging with another folder) DEER_PACKAGE_MODEL.
const MODEL_SRC = process.env.DEER_PACKAGE_MODEL ? resolve(process.env.DEER_PACKAGE_MODEL) : join(ROOT, 'models', 'default');
for (const f of ['dist/extension.js', 'dist/worker.js']) if (!existsSync(f)) throw new Error(`${f} is missing: run npm run build`);
if (!existsSync(join(MODEL_SRC, 'config.json'))) console.warn(`warning: no model folder at ${MODEL_SRC}: the .vsix will have no embedded model`);
const MODEL_DIR = join('models', 'default');

/** Files under `dir` (relative to ROOT), skipping nested node_modules and `skip(rel)`. */
function walk(dir, skip = () => false, out = []) {
  if (!existsSync(dir)) return out;
  if (statSync(dir).isFile()) return out.push(dir), out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (skip(p) || (e.isDirectory() && e.name === 'node_modules')) continue;
    if (e.isDirectory()) walk(p, skip, out);
    else if (e.isFile()) out.push(p);
  }
  return out;
}

const deps = execSync('npm list --production --parseable --depth=99999 --loglevel=error', { encoding: 'utf8' })
  .split(/\r?\n/)
  .filter((d) => d && resolve(d) !== ROOT)
  .map((d) => relative(ROOT, d));

for (const target of targets) {
  const binaries = BINARIES[target];
  if (!binaries) throw new Error(`no onnxruntime binaries known for target ${target} (known: ${Object.keys(BINARIES).join(', ')})`);
  // Per process: another `npm run package` (the VS Code test run) may be packaging at the same time.
  const stage = join('dist', `vsix-stage-${target}-${process.pid}`);
  rmSync(stage, { recursive: true, force: true });
  const ortBin = join('node_modules', 'onnxruntime-node', 'bin');
  // Paths under bin/ to keep: the target's files (a trailing /* keeps its whole folder).
  const wanted = binaries.map((b) => join(ortBin, 'napi-v6', b.replace(/\/\*$/, '')));
  const files = [
    'package.json', 'README.md', 'LICENSE', 'LICENSE.md', 'LICENSE.txt', 'CHANGELOG.md',
    'dist/extension.js', 'dist/worker.js',
    ...walk('media'),
    ...deps.flatMap((d) => walk(d, (p) => p.startsWith(ortBin + '/') && !wanted.some((w) => w.startsWith(p) || p.startsWith(w + '/')))),
  ].filter((f) => existsSync(f));
  const modelFiles = walk(relative(ROOT, MODEL_SRC) || '.').map((f) => [f, join(MODEL_DIR, relative(relative(ROOT, MODEL_SRC), f))]);
  for (const [f, to0] of [...files.map((f) => [f, f]), ...modelFiles]) {
    const to = join(stage, to0);
    mkdirSync(dirname(to), { recursive: true });
    try {
      linkSync(f, to);
    } catch {
      copyFileSync(f, to);
    }
  }
  const ignore = readFileSync('.vscodeignore', 'utf8') + binaries.map((b) => `!node_modules/onnxruntime-node/bin/napi-v6/${b}`).join('\n') + '\n';
  writeFileSync(join(stage, '.vscodeignore'), ignore);
  const out = resolve('dist', `${pkg.name}-${target}-${pkg.version}.vsix`);
  const tmpOut = `${out}.${process.pid}.tmp`;
  try {
    execFileSync(
      process.execPath,
      [
        join(ROOT, 'node_modules/@vscode/vsce/vsce'), 'package',
        '--target', target, '--out', tmpOut,
        '--allow-missing-repository', '--skip-license', '--no-rewrite-relative-links',
      ],
      { stdio: 'inherit', cwd: stage },
    );
    renameSync(tmpOut, out); // appears whole, never half-written
  } finally {
    rmSync(stage, { recursive: true, force: true });
    rmSync(tmpOut, { force: true });
  }
  console.log(`${relative(ROOT, out)}: ${(statSync(out).size / 1024 / 1024).toFixed(1)} MB`);
}
