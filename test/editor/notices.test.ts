// Load-error toasts: one per cause, the folder named once.
import { after, before, describe, it, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelFolder } from '../../src/engine/modelFolder';
import { LoadErrorNotices, generateDoneMessage, loadErrorMessage, toggleNotice } from '../../src/editor/notices';
import { Engine } from '../../src/engine';
import { TINY_MODEL, hasModel } from '../engine/support';

/** The error the engine really throws for a folder without config.json. */
function realFolderError(): { dir: string; err: Error } {
  const dir = mkdtempSync(join(tmpdir(), 'deer-notices-'));
  try {
    readModelFolder(dir);
  } catch (err) {
    return { dir, err: err as Error };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error('an empty folder loaded as a model');
}

test('load error message names the folder once and the problem', () => {
  const { dir, err } = realFolderError();
  assert.ok(err.message.includes(dir), 'the engine error is expected to carry the path');
  const msg = loadErrorMessage(dir, err);
  assert.equal(msg.split(dir).length - 1, 1, `the folder appears more than once: ${msg}`);
  assert.match(msg, /is not a usable model folder: config\.json/);
  assert.equal(loadErrorMessage('/m', { name: 'Error', message: 'onnxruntime: bad graph' }), 'DEER: /m could not be loaded: onnxruntime: bad graph');
});

test('one toast per cause until a load succeeds', () => {
  const { dir, err } = realFolderError();
  const notices = new LoadErrorNotices();
  assert.ok(notices.next(dir, err));
  assert.equal(notices.next(dir, err), undefined, 'the same failure again (another request) is not a new toast');
  assert.ok(notices.next('/other', err), 'another folder is another cause');
  notices.reset();
  assert.ok(notices.next(dir, err), 'after a successful load the failure is news again');
});

describe('the toast after Generate says why it stopped when that is not obvious', { skip: !hasModel(TINY_MODEL) && 'fixture missing' }, () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.load({ modelDir: TINY_MODEL, threads: 1, spinning: false, calibrate: false });
  });
  after(async () => engine?.dispose());

  it('output that repeated itself', async () => {
    const r = await engine.complete({ prefix: 'import os\nimport os\nimport os\n', maxNewTokens: 64, drafter: 'none' });
    assert.equal(r.stopReason, 'repeat', 'the model loops on this prompt');
    assert.match(generateDoneMessage(r, r.text, 64), new RegExp(`^DEER: wrote ${r.stats.newTokens} tokens \\(stopped because the output was repeating itself; one copy kept\\) · \\d+ tok/s`));
  });

  it('the token limit', async () => {
    const r = await engine.complete({ prefix: 'def fibonacci(n):\n', maxNewTokens: 5, drafter: 'none' });
    assert.equal(r.stopReason, 'max_tokens');
    assert.match(generateDoneMessage(r, r.text, 5), /^DEER: wrote 5 tokens \(stopped at the limit of 5 tokens, deer\.generate\.maxNewTokens\) · /);
  });

  it('a control token, a natural end, a cancellation', async () => {
    const r = await engine.complete({ prefix: 'def fibonacci(n):\n', maxNewTokens: 5, drafter: 'none' });
    assert.match(generateDoneMessage({ ...r, stopReason: 'control' }, r.text, 5), /\(stopped where the model wrote a control token, which is never inserted\)/);
    const natural = generateDoneMessage({ ...r, stopReason: 'eos' }, r.text, 5);
    assert.match(natural, /^DEER: wrote 5 tokens · \d+ tok\/s · \d\.\d\d tokens per verifier pass \(none\)$/, 'no explanation for a natural end');
    assert.match(generateDoneMessage({ ...r, stopReason: 'aborted' }, r.text, 5), /^DEER: stopped after 5 tokens · /);
    assert.equal(generateDoneMessage({ ...r, stopReason: 'aborted' }, '', 5), 'DEER: Generate cancelled.');
    assert.equal(generateDoneMessage({ ...r, stopReason: 'control' }, ' \n', 5), 'DEER: the model had nothing to add here.');
  });
});

// (the command showing it in real VS Code: test/vscode/suite)
test('Toggle says what it did, and that Generate still works when inline completion is off', () => {
  assert.match(toggleNotice(true), /inline completion is on/);
  assert.match(toggleNotice(false), /inline completion is off .*Generate still works/);
});
