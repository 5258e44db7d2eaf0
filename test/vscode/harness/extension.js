// Test-only extension for the code-server runner (test/vscode/run.sh).
// On activation it loads the bundled suite (dist/test/vscode/suite/index.js), runs it against
// the real `vscode` API of this extension host, and writes the results as JSON. Where to find
// the suite and where to write are read from harness.json, which the runner writes next to
// this file before packaging (environment variables do not reliably reach code-server's
// extension host).
'use strict';
const fs = require('fs');
const path = require('path');

function writeJson(file, value) {
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2));
  fs.renameSync(tmp, file);
}

exports.activate = function activate() {
  const cfgFile = path.join(__dirname, 'harness.json');
  if (!fs.existsSync(cfgFile)) return;
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  const log = (line) => fs.appendFileSync(cfg.log, line + '\n');
  // Run after activate() returns, so this extension's activation does not wait for the suite.
  setTimeout(async () => {
    const vscode = require('vscode');
    log(`harness: VS Code ${vscode.version}, running ${cfg.suite}`);
    let results;
    try {
      const { runSuite } = require(cfg.suite);
      results = await runSuite(log);
    } catch (err) {
      log(`harness: suite crashed: ${err && err.stack ? err.stack : err}`);
      results = { passed: 0, failed: 1, pending: 0, tests: [{ title: 'suite', state: 'failed', durationMs: 0, error: String(err && err.stack ? err.stack : err) }] };
    }
    try {
      // The browser check types next: give the model time to be (back) in the ready state.
      const deer = vscode.extensions.getExtension('deer-complete.deer-complete');
      const api = deer && (deer.isActive ? deer.exports : await deer.activate());
      for (let i = 0; api && i < 600 && api.status().state === 'loading'; i++) await new Promise((r) => setTimeout(r, 200));
      log(`harness: deer status before the browser check: ${api ? JSON.stringify(api.status().text) + ' (' + api.status().state + ')' : 'not installed'}`);
    } catch (err) {
      log(`harness: deer status unknown: ${err}`);
    }
    try {
      // Toasts left by the suite (the invalid-model-folder error) must not cover the editor.
      await vscode.commands.executeCommand('notifications.clearAll');
    } catch (err) {
      log(`harness: could not clear notifications: ${err}`);
    }
    try {
      // Leave an editor on the browser check's file, focused, cursor at cfg.openAt (default: the end).
      if (cfg.openAfter) {
        const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(cfg.openAfter));
        const editor = await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: false });
        const at = doc.positionAt(typeof cfg.openAt === 'number' ? cfg.openAt : doc.getText().length);
        editor.selection = new vscode.Selection(at, at);
      }
    } catch (err) {
      log(`harness: could not open ${cfg.openAfter}: ${err}`);
    }
    writeJson(cfg.results, results);
  }, 0);
};

exports.deactivate = function deactivate() {};
