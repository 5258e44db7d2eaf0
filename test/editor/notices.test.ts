// Load-error toasts: one per cause, the folder named once.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModelFolder } from '../../src/engine/modelFolder';
import { LoadErrorNotices, loadErrorMessage } from '../../src/editor/notices';

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
