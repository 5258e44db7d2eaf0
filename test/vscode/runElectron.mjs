// Runs the same VS Code suite in desktop VS Code via @vscode/test-electron, for machines that
// can download VS Code (this project's build machine cannot: there the suite runs in
// code-server, see test/vscode/run.sh and docs/testing.md).
//   npm run build && node test/vscode/runElectron.mjs [--version 1.95.0]
// Needs a display on Linux (e.g. `xvfb-run -a node test/vscode/runElectron.mjs`).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const suite = path.join(root, 'dist/test/vscode/suite/index.js');
if (!fs.existsSync(suite) || !fs.existsSync(path.join(root, 'dist/extension.js'))) {
  console.error('dist/ is missing the extension or the suite: run `npm run build` first');
  process.exit(1);
}
const vi = process.argv.indexOf('--version');
const version = vi > 0 ? process.argv[vi + 1] : 'stable';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'deer-electron-'));
const workspace = path.join(tmp, 'workspace');
fs.mkdirSync(workspace);
try {
  await runTests({
    version,
    extensionDevelopmentPath: root,
    extensionTestsPath: suite,
    launchArgs: [
      workspace,
      '--disable-extensions', // other installed extensions; the one under development still loads
      '--disable-workspace-trust',
      '--skip-welcome',
      '--skip-release-notes',
      '--user-data-dir', path.join(tmp, 'user-data'),
    ],
  });
  process.exitCode = 0;
} catch (err) {
  console.error(`VS Code tests failed: ${err && err.message ? err.message : err}`);
  process.exitCode = 1;
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
