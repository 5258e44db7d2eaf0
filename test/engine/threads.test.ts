// The engine's thread defaults (ENGINE_DEFAULTS.threads): what a load without options gets.
import assert from 'node:assert/strict';
import { cpus } from 'node:os';
import { describe, it } from 'node:test';
import { defaultSpinning, defaultThreads, Engine } from '../../src/engine';
import { readModelFolder } from '../../src/engine/modelFolder';
import { DEFAULT_MODEL, TINY_MODEL, hasModel } from './support';

describe('inference threads', { skip: !hasModel(DEFAULT_MODEL) && 'model missing' }, () => {
  it('a small verifier gets two threads, a large one four, never more than the cores', () => {
    const small = readModelFolder(DEFAULT_MODEL);
    const large = { ...small, hiddenSize: 2048, verifier: { ...small.verifier, numLayers: 24 } };
    assert.deepEqual([1, 2, 8].map((cores) => defaultThreads(small, cores)), [1, 2, 2]);
    assert.deepEqual([1, 2, 8].map((cores) => defaultThreads(large, cores)), [1, 2, 4]);
  });

  it('threads spin only when they leave a core free', () => {
    assert.equal(defaultSpinning(2, 2), false);
    assert.equal(defaultSpinning(1, 1), false);
    assert.equal(defaultSpinning(2, 8), true);
  });

  it('a load without options uses those defaults and says so', { skip: !hasModel(TINY_MODEL) && 'fixture missing' }, async () => {
    const engine = await Engine.load({ modelDir: TINY_MODEL, calibrate: false });
    try {
      const threads = defaultThreads(readModelFolder(TINY_MODEL));
      assert.equal(engine.info.threads, threads);
      assert.equal(engine.info.spinning, defaultSpinning(threads, cpus().length));
      const r = await engine.complete({ prefix: 'def add(a, b):\n', maxNewTokens: 4, drafter: 'none' });
      assert.ok(r.stats.newTokens > 0);
    } finally {
      await engine.dispose();
    }
  });
});
