// The VS Code suite: written once against the real `vscode` API, run by both runners
// (code-server here, @vscode/test-electron where desktop VS Code can be downloaded).
// registerDeerTests() is called by index.ts after mocha has put suite()/test() on the global object.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';

export const EXTENSION_ID = 'deer-complete.deer-complete';

/** The test hook that activate() returns (names fixed in the extension issue). */
export interface DeerTestApi {
  status(): { state: 'loading' | 'ready' | 'disabled' | 'error'; text: string; tooltip: string; error?: string };
  lastStats(): { newTokens: number; tokensPerSecond: number; estimatedSpeedup: number } | undefined;
  whenIdle(): Promise<void>;
  /** Every toast the extension showed, oldest first. */
  notices(): readonly string[];
  /** The output channel's last lines (without their timestamps), oldest first. */
  log(): readonly string[];
  /** Every progress message of DEER: Generate, oldest first. */
  progress(): readonly string[];
  /** What the stats view shows now: its status line, the error and its buttons. */
  statsPage(): { status: string; error?: string; actions: readonly { title: string; command: string }[] };
}

/** Measured figures only: throughput and tokens per verifier pass (no estimated speedup). */
export const STATUS_FIGURES = /^\$\(zap\) \d+ tok\/s · \d+\.\d\d\/pass$/;
/** Special-token markup (FIM markers, <|endoftext|>, ...) must never reach the document. */
const SPECIAL_TOKEN = /<\|[^|>\s]*\|>|<(fim|file|repo)_[a-z_]*>|<\/?s>|<(pad|eos|bos|unk|mask)>/i;

function assertPlainText(what: string, text: string): void {
  const m = SPECIAL_TOKEN.exec(text);
  assert.ok(!m, `${what} contains special-token markup ${JSON.stringify(m?.[0])}: ${JSON.stringify(text.slice(0, 200))}`);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | false | Promise<T | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

async function waitReady(api: DeerTestApi, timeoutMs = 240_000): Promise<void> {
  await waitFor('the extension to be ready', timeoutMs, () => {
    const s = api.status();
    if (s.state === 'error') throw new Error(`extension is in the error state: ${s.error ?? s.tooltip}`);
    return s.state === 'ready';
  });
}

async function setDeer(key: string, value: unknown): Promise<void> {
  await vscode.workspace.getConfiguration('deer').update(key, value, vscode.ConfigurationTarget.Global);
}

let tmpDir = '';
/** Writes a file in a fresh temp folder, opens it, and puts the cursor after `prefix`. */
async function openAt(name: string, prefix: string, suffix: string): Promise<vscode.TextEditor> {
  const file = path.join(tmpDir, name);
  fs.writeFileSync(file, prefix + suffix);
  const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(file));
  const editor = await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: false });
  const pos = doc.positionAt(prefix.length);
  editor.selection = new vscode.Selection(pos, pos);
  return editor;
}

/**
 * Asks for an inline suggestion at the cursor and commits it, as Alt+\ then Tab would.
 * Retries the trigger until a suggestion is committed (the provider is debounced and the
 * model can be slow on a busy CPU). Returns the committed text.
 */
async function triggerAndCommit(api: DeerTestApi, editor: vscode.TextEditor, timeoutMs = 150_000): Promise<string> {
  const doc = editor.document;
  const before = doc.getText();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: false });
    await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    // Let the debounce pass and the request start, then wait for the engine to finish.
    for (let i = 0; i < 10 && doc.getText() === before; i++) {
      await sleep(500);
      await api.whenIdle();
      await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
    }
    if (doc.getText() !== before) return doc.getText();
  }
  throw new Error(`no inline suggestion was committed within ${timeoutMs} ms (status: ${JSON.stringify(api.status())})`);
}

async function saveAll(): Promise<void> {
  for (const d of vscode.workspace.textDocuments) if (d.isDirty && d.uri.scheme === 'file') await d.save();
}

/** note: where tests print what they saw (the runner's log); console.log by default. */
export function registerDeerTests(note: (line: string) => void = (l) => console.log(l)): void {
  suite('deer-complete in VS Code', () => {
    let api: DeerTestApi;

    suiteSetup(async function () {
      this.timeout(300_000);
      tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'deer-vscode-suite-'));
      const ext = vscode.extensions.getExtension<DeerTestApi>(EXTENSION_ID);
      assert.ok(ext, `extension ${EXTENSION_ID} is not installed`);
      api = await ext.activate();
      assert.ok(api && typeof api.status === 'function', 'activate() did not return the test-hook API');
      await setDeer('enabled', true);
      await setDeer('modelPath', undefined);
      await setDeer('generate.maxNewTokens', 48);
    });

    suiteTeardown(async () => {
      await saveAll();
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      await setDeer('modelPath', undefined);
      await setDeer('generate.maxNewTokens', undefined);
      if (tmpDir) fs.rmSync(tmpDir, { recursive: true, force: true });
    });

    suite('with the embedded model', () => {
      suiteSetup(async function () {
        this.timeout(300_000);
        await waitReady(api);
      });

      test('inline suggestion appears and is committed at the cursor', async () => {
        // mid-expression: after a bare `return ` the retrained model's answer starts on the next line
        const prefix = 'export function fibonacci(n: number): number {\n  if (n < 2) {\n    return n;\n  }\n  return fibonacci(';
        const suffix = '\n}\n';
        const editor = await openAt('inline.ts', prefix, suffix);
        const after = await triggerAndCommit(api, editor);
        assert.ok(after.startsWith(prefix), 'text before the cursor changed');
        assert.ok(after.endsWith(suffix), `text after the cursor changed: ${JSON.stringify(after.slice(prefix.length))}`);
        const inserted = after.slice(prefix.length, after.length - suffix.length);
        assert.ok(inserted.trim().length > 0, `committed suggestion is blank: ${JSON.stringify(inserted)}`);
        note(`       committed: ${JSON.stringify(inserted)}`);
        assertPlainText('committed suggestion', inserted);
        const cursor = editor.document.offsetAt(editor.selection.active);
        assert.equal(cursor, prefix.length + inserted.length, 'cursor is not at the end of the committed suggestion');
        // The output channel (DEER: Show Log) has a line for the model's answer that was shown.
        const answers = api.log().filter((l) => l.startsWith('inline '));
        assert.ok(answers.some((l) => / wrote ".*; shown$/.test(l)), `no shown answer in the log: ${JSON.stringify(answers.slice(-3))}`);
        await vscode.commands.executeCommand('deer.showLog');
        await vscode.commands.executeCommand('workbench.action.closePanel');
      });

      test('status bar shows measured figures after a completion', async () => {
        if (!api.lastStats()) {
          const editor = await openAt('status.ts', 'const squares = [1, 2, 3].map((x) => ', '\n');
          await triggerAndCommit(api, editor);
        }
        await api.whenIdle();
        const stats = api.lastStats();
        assert.ok(stats, 'lastStats() is undefined after a completion');
        assert.ok(stats.newTokens > 0, `lastStats().newTokens = ${stats.newTokens}`);
        const s = api.status();
        assert.equal(s.state, 'ready');
        note(`       status bar: ${JSON.stringify(s.text)}`);
        assert.match(s.text, STATUS_FIGURES, `status bar text: ${JSON.stringify(s.text)}`);
        const perPass = Number(/([\d.]+)\/pass/.exec(s.text)?.[1]);
        assert.ok(perPass >= 1, `a verifier pass yields at least one token; the status bar shows ${perPass}`);
      });

      test('generate command inserts text at the cursor and one undo restores the document', async () => {
        const prefix = 'def is_prime(n: int) -> bool:\n    """Return True if n is a prime number."""\n    ';
        const suffix = '\n\n\nprint(is_prime(7))\n';
        const editor = await openAt('generate.py', prefix, suffix);
        const doc = editor.document;
        const original = doc.getText();
        const progressBefore = api.progress().length;
        await vscode.commands.executeCommand('deer.generate');
        await api.whenIdle();
        // Generation streams; wait until the text has stopped changing.
        let last = '';
        await waitFor('generated text to settle', 120_000, async () => {
          await api.whenIdle();
          const now = doc.getText();
          const settled = now !== original && now === last;
          last = now;
          if (!settled) await sleep(800);
          return settled;
        });
        const after = doc.getText();
        assert.ok(after.startsWith(prefix) && after.endsWith(suffix), 'generated text was not inserted at the cursor');
        const inserted = after.slice(prefix.length, after.length - suffix.length);
        assert.ok(inserted.trim().length > 0, `generated text is blank: ${JSON.stringify(inserted)}`);
        note(`       generated: ${JSON.stringify(inserted.length > 120 ? inserted.slice(0, 120) + '…' : inserted)}`);
        assertPlainText('generated text', inserted);
        const progress = api.progress().slice(progressBefore);
        note(`       progress: ${JSON.stringify(progress)}`);
        assert.ok(progress.includes('writing…'), `Generate showed no progress: ${JSON.stringify(progress)}`);
        assert.ok(!progress.some((m) => /loading/i.test(m)), `"loading the model" with the model loaded: ${JSON.stringify(progress)}`);
        await vscode.window.showTextDocument(doc, { preview: false, preserveFocus: false });
        await vscode.commands.executeCommand('undo');
        assert.equal(doc.getText(), original, 'one undo did not restore the original text');
      });

      test('Toggle turns inline completion off and on, and says so', async () => {
        const before = api.notices().length;
        await vscode.commands.executeCommand('deer.toggle');
        await waitFor('the disabled state', 10_000, () => api.status().state === 'disabled');
        await vscode.commands.executeCommand('deer.toggle');
        await waitReady(api, 30_000);
        const said = api.notices().slice(before);
        note(`       toggle said: ${JSON.stringify(said)}`);
        assert.equal(said.length, 2, `expected one message per toggle: ${JSON.stringify(said)}`);
        assert.match(said[0], /off/);
        assert.match(said[1], /on/);
      });

      test('no inline suggestion in a language switched off (plaintext by default)', async () => {
        const editor = await openAt('notes.txt', 'export function fibonacci(n: number): number {\n  return ', '\n}\n');
        const before = editor.document.getText();
        for (let i = 0; i < 4; i++) {
          await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
          await sleep(500);
          await api.whenIdle();
          await vscode.commands.executeCommand('editor.action.inlineSuggest.commit');
        }
        assert.equal(editor.document.languageId, 'plaintext');
        assert.equal(editor.document.getText(), before, 'a suggestion was committed in a plaintext document');
      });
    });

    // After the model tests (mocha runs a suite's own tests before its nested suites).
    suite('model folder', () => {
      test('an invalid model folder shows the error state, naming the problem', async () => {
        // Runs whether or not the embedded model works; it must come back when it did before.
        const before = api.status();
        const wasReady = before.state === 'ready';
        const bad = fs.mkdtempSync(path.join(os.tmpdir(), 'deer-not-a-model-'));
        fs.writeFileSync(path.join(bad, 'README.txt'), 'not a model\n');
        try {
          await setDeer('modelPath', bad);
          // (If the embedded model was already in error, wait for the new folder's error.)
          await waitFor('the error state', 120_000, () => {
            const s = api.status();
            return s.state === 'error' && (before.state !== 'error' || s.error !== before.error || s.tooltip !== before.tooltip);
          });
          const s = api.status();
          const problem = `${s.error ?? ''} ${s.tooltip}`;
          assert.ok((s.error ?? '').trim().length > 0, `status().error is empty (tooltip: ${JSON.stringify(s.tooltip)})`);
          assert.match(
            problem,
            /config\.json|tokenizer\.json|deer\.json|onnx|missing|not found|no such|does not|not a model/i,
            `error does not name the problem: ${JSON.stringify(problem)}`,
          );
          note(`       error: ${JSON.stringify(s.error)}; status bar: ${JSON.stringify(s.text)}`);

          // One toast for this cause, naming the folder once; more requests (Generate) add none.
          const aboutBad = () => api.notices().filter((m) => m.includes(bad));
          await waitFor('the load-error toast', 10_000, () => aboutBad().length > 0);
          const toast = aboutBad()[0];
          note(`       toast: ${JSON.stringify(toast)}`);
          assert.equal(toast.split(bad).length - 1, 1, `the folder is repeated in the toast: ${toast}`);
          const editor = await openAt('after-error.ts', 'const x = ', '\n');
          await vscode.window.showTextDocument(editor.document);
          await vscode.commands.executeCommand('deer.generate');
          await vscode.commands.executeCommand('deer.generate');
          await api.whenIdle();
          await sleep(500);
          assert.deepEqual(aboutBad(), [toast], `more than one toast for one cause: ${JSON.stringify(api.notices())}`);
          assert.ok(!api.notices().some((m) => /Generate failed/.test(m)), `Generate added its own toast: ${JSON.stringify(api.notices())}`);

          // The error view (the stats view, opened from the status bar) offers the fixes; each runs.
          await vscode.commands.executeCommand('deer.showStats');
          const page = api.statsPage();
          assert.equal(page.error, s.error);
          assert.deepEqual(page.actions.map((a) => a.title), ['Choose Model Folder…', 'Use Embedded Model', 'Open Settings']);
          const run = (title: string) => vscode.commands.executeCommand(page.actions.find((a) => a.title === title)!.command);

          await run('Open Settings');
          await waitFor('the Settings editor', 10_000, () => vscode.window.tabGroups.all.some((g) => g.tabs.some((t) => /settings/i.test(t.label))));

          // The folder picker waits for the user (the simple dialog, a quick input here); Escape cancels it.
          const simpleDialog = vscode.workspace.getConfiguration('files').inspect('simpleDialog.enable')?.globalValue;
          await vscode.workspace.getConfiguration('files').update('simpleDialog.enable', true, vscode.ConfigurationTarget.Global);
          try {
            let settled = false;
            const choosing = Promise.resolve(run('Choose Model Folder…')).finally(() => (settled = true));
            await sleep(1500);
            assert.equal(settled, false, 'Choose Model Folder… did not wait for a folder to be picked');
            await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
            await Promise.race([choosing, sleep(10_000).then(() => Promise.reject(new Error('the folder picker did not close')))]);
            assert.equal(vscode.workspace.getConfiguration('deer').get('modelPath'), bad, 'a cancelled pick changed the model folder');
          } finally {
            await vscode.workspace.getConfiguration('files').update('simpleDialog.enable', simpleDialog, vscode.ConfigurationTarget.Global);
          }

          await run('Use Embedded Model');
          assert.equal(vscode.workspace.getConfiguration('deer').inspect('modelPath')?.globalValue, undefined);
          if (wasReady) {
            await waitReady(api);
            assert.deepEqual(api.statsPage().actions, [], 'the buttons stay after the model loaded');
          }
        } finally {
          await setDeer('modelPath', undefined);
          fs.rmSync(bad, { recursive: true, force: true });
        }
        if (wasReady) await waitReady(api);
      });
    });
  });
}
