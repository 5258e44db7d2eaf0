// A DEER drafter with a reduced head (logits for N token ids, listed by its head_ids output, as
// training/export.py writes drafters with head_tokens): its drafts, sampling distributions and
// tree candidates must be those of the same drafter scoring the whole vocabulary with -inf
// outside the head. Fixture: test/fixtures/samples/reduced-head-drafter.onnx, the tiny model's
// drafter cut to a shuffled half of its vocabulary (make_reduced_head_drafter.py).
import assert from 'node:assert/strict';
import { copyFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { Engine } from '../../src/engine';
import { toProbs } from '../../src/engine/acceptance';
import { DiffusionDrafter } from '../../src/engine/drafters/diffusion';
import type { DraftContext } from '../../src/engine/drafters/types';
import { evalPrompts, hasModel, ROOT, TINY_MODEL } from './support';

const REDUCED = join(ROOT, 'test', 'fixtures', 'samples', 'reduced-head-drafter.onnx');
const MASK = 4;
const EOS = 0;
const VOCAB = 1024;
const BLOCK = 16;
const WINDOW = 32;

function context(tokens: number[], over: Partial<DraftContext> = {}): DraftContext {
  return { tokens, promptLength: tokens.length, suffixIds: [], temperature: 0, topP: 1, rng: Math.random, candidates: 0, ...over };
}

/** The original full-vocabulary drafter's logits, the head's complement set to -inf. */
async function referenceRows(full: ort.InferenceSession, head: Int32Array, tokens: number[], k: number): Promise<Float32Array[]> {
  const c = Math.min(WINDOW, tokens.length);
  const ids = BigInt64Array.from([...tokens.slice(-c), ...Array<number>(k).fill(MASK)], BigInt);
  const logits = (await full.run({ input_ids: new ort.Tensor('int64', ids, [1, c + k]) })).logits.data as Float32Array;
  const inHead = new Uint8Array(VOCAB);
  for (const id of head) inHead[id] = 1;
  return Array.from({ length: k }, (_, i) => {
    const row = logits.slice(i * VOCAB, (i + 1) * VOCAB);
    for (let t = 0; t < VOCAB; t++) if (!inHead[t] || t === MASK) row[t] = -Infinity;
    return row;
  });
}

const argmax = (row: Float32Array) => row.reduce((best, x, i) => (x > row[best] ? i : best), 0);

describe('a drafter with a reduced head (head_ids)', { skip: !hasModel(TINY_MODEL) && 'fixture missing' }, () => {
  let drafter: DiffusionDrafter;
  let full: ort.InferenceSession;
  let head: Int32Array;
  const prompts = evalPrompts('mbpp-py-reworded.jsonl', 2);
  const contexts = [
    [17, 300, 42, 99, 512, 7, 7, 8, 1000, 23],
    Array.from({ length: 50 }, (_, i) => (i * 37) % (VOCAB - 10) + 7), // longer than the window
  ];

  before(async () => {
    drafter = await DiffusionDrafter.create(
      { file: REDUCED, blockSize: BLOCK, contextWindow: WINDOW, conditioning: ['context'] },
      { threads: 1, spinning: false, maskId: MASK, eosId: EOS, vocabSize: VOCAB, hiddenSize: 0 },
    );
    full = await ort.InferenceSession.create(join(TINY_MODEL, 'onnx', 'drafter.onnx'));
    const probe = BigInt64Array.from([7, 8, MASK], BigInt);
    const raw = await (await ort.InferenceSession.create(REDUCED)).run({ input_ids: new ort.Tensor('int64', probe, [1, 3]) });
    head = Int32Array.from(raw.head_ids.data as BigInt64Array, Number);
    assert.equal(head.length, VOCAB / 2);
  });
  after(async () => {
    await drafter?.dispose();
    await full?.release();
  });

  it('greedy drafts are the full drafter\'s argmax over the head, as token ids', async () => {
    for (const tokens of contexts) {
      const ref = await referenceRows(full, head, tokens, BLOCK);
      const draft = await drafter.draft(context(tokens), BLOCK);
      assert.deepEqual(draft.tokens, ref.map(argmax));
      assert.ok(draft.tokens.every((t) => head.includes(t)));
    }
  });

  it('sampling reports a distribution over the whole vocabulary, zero outside the head', async () => {
    for (const tokens of contexts) {
      const ref = await referenceRows(full, head, tokens, 4);
      const draft = await drafter.draft(context(tokens, { temperature: 0.8, topP: 0.95, rng: () => 0.5 }), 4);
      assert.equal(draft.probs?.length, 4);
      for (let i = 0; i < 4; i++) {
        const want = toProbs(ref[i], 0.8, 0.95);
        const got: Float32Array = draft.probs![i];
        assert.equal(got.length, VOCAB);
        for (let t = 0; t < VOCAB; t++) assert.ok(Math.abs(got[t] - want[t]) < 1e-6, `position ${i}, token ${t}: ${got[t]} vs ${want[t]}`);
        assert.ok(got[draft.tokens[i]] > 0, 'the drawn token has probability');
      }
    }
  });

  it('tree candidates are token ids, likeliest first', async () => {
    const tokens = contexts[0];
    const ref = await referenceRows(full, head, tokens, BLOCK);
    const draft = await drafter.draft(context(tokens, { candidates: 3 }), BLOCK);
    for (const d of [0, 5, BLOCK - 1]) {
      const want = [...ref[d].keys()].sort((a, b) => ref[d][b] - ref[d][a]).slice(0, 3);
      assert.deepEqual(draft.positions!.at(d)!.tokens, want, `position ${d}`);
    }
  });

  describe('in the engine', () => {
    let dir: string;
    let engine: Engine;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'deer-reduced-head-'));
      cpSync(TINY_MODEL, dir, { recursive: true });
      copyFileSync(REDUCED, join(dir, 'onnx', 'drafter.onnx'));
      engine = await Engine.load({ modelDir: dir, threads: 1, spinning: false, calibrate: false });
    });
    after(async () => {
      await engine?.dispose();
      rmSync(dir, { recursive: true, force: true });
    });

    it('deer writes what plain decoding writes, with drafted tokens accepted', async () => {
      let accepted = 0;
      for (const p of prompts) {
        const base = await engine.complete({ prefix: p.prompt, maxNewTokens: 32, drafter: 'none' });
        const r = await engine.complete({ prefix: p.prompt, maxNewTokens: 32, drafter: 'deer', treeBudget: 0, adaptiveBlock: false });
        assert.deepEqual(r.tokens, base.tokens, p.name);
        accepted += r.stats.acceptedHistogram.reduce((sum, passes, n) => sum + passes * n, 0);
      }
      assert.ok(accepted > 0, 'no drafted token was accepted');
    });
  });
});
