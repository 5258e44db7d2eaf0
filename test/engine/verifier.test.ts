// KV-cache rollback, prefix reuse, chunked prefill and IO binding give the logits of a fresh prefill.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readModelFolder } from '../../src/engine/modelFolder';
import { DecoderSession, DecoderOptions } from '../../src/engine/verifier';
import { CONDITIONED_MODEL, DEFAULT_MODEL, hasModel, INT8_MODEL, TINY_MODEL } from './support';

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const dir of [TINY_MODEL, INT8_MODEL, CONDITIONED_MODEL]) {
  describe(`verifier cache (${dir.split('/').slice(-1)[0]})`, { skip: !hasModel(dir) && 'model fixture missing' }, () => {
    const sessions: DecoderSession[] = [];
    let open: (extra?: Partial<DecoderOptions>) => Promise<DecoderSession>;
    const seq = Array.from({ length: 48 }, (_, i) => (i * 37 + 11) % 200);
    const other = [...seq.slice(0, 25), ...Array.from({ length: 15 }, (_, i) => (i * 13 + 5) % 200)];

    before(() => {
      const spec = readModelFolder(dir);
      const hs = spec.verifier.hiddenStates;
      open = async (extra = {}) => {
        const s = await DecoderSession.create(spec.verifier.file, spec.verifier, {
          threads: 1,
          spinning: false,
          vocabSize: spec.vocabSize,
          maxPositions: spec.maxPositions,
          hiddenOutput: hs?.output,
          hiddenSize: hs?.size,
          ...extra,
        });
        sessions.push(s);
        return s;
      };
    });
    after(async () => {
      for (const s of sessions) await s.dispose();
    });

    async function fresh(ids: number[], probe: number[], extra?: Partial<DecoderOptions>) {
      const s = await open(extra);
      await s.prefill(ids);
      const logits = (await s.forward(probe))!.slice();
      return { s, logits };
    }

    it('rollback after rejected tokens gives the logits of a fresh prefill', async () => {
      const ref = await fresh(seq, [3, 4]);
      const s = await open();
      await s.prefill(seq.slice(0, 20));
      await s.forward([...seq.slice(20, 30), 99, 98, 97, 96, 95]); // 5 "rejected" drafts
      s.rollback(30);
      assert.deepEqual(s.tokens, seq.slice(0, 30));
      await s.forward(seq.slice(30, 41));
      s.rollback(41);
      await s.forward(seq.slice(41));
      const logits = (await s.forward([3, 4]))!;
      assert.ok(maxDiff(logits, ref.logits) < 1e-4);
    });

    it('prefix reuse across requests keeps the common prefix and matches a fresh prefill', async () => {
      const ref = await fresh(other, [7]);
      const s = await open();
      await s.prefill(seq);
      const reused = await s.prefill(other);
      assert.equal(reused, 25);
      assert.deepEqual(s.tokens, other);
      const logits = (await s.forward([7]))!;
      assert.ok(maxDiff(logits, ref.logits) < 1e-4);
      if (s.hiddenSize > 0) {
        for (const pos of [0, 24, 25, 39]) assert.ok(maxDiff(s.hiddenAt(pos), ref.s.hiddenAt(pos)) < 1e-4, `hidden at ${pos}`);
      }
    });

    it('chunked prefill and pre-allocated (bound) outputs agree with the default', async () => {
      const ref = await fresh(seq, [1, 2, 3]);
      const chunked = await fresh(seq, [1, 2, 3], { prefillChunk: 7 });
      assert.ok(maxDiff(chunked.logits, ref.logits) < 1e-4);
      const unbound = await open({ bind: true });
      await unbound.prefill(seq.slice(0, 30));
      await unbound.forward([50, 51, 52]);
      unbound.rollback(30);
      await unbound.prefill(seq);
      const logits = (await unbound.forward([1, 2, 3]))!;
      assert.ok(maxDiff(logits, ref.logits) < 1e-4);
    });

    for (const bind of [false, true]) {
      it(`padded passes (min_tokens_per_pass) give the logits and cache of unpadded ones${bind ? ' (bound outputs)' : ''}`, async () => {
        const ref = await open({ bind });
        const padded = await open({ bind, minTokensPerPass: 3, prefillChunk: 47 }); // 47 + a padded 1-token chunk
        for (const s of [ref, padded]) await s.prefill(seq);
        assert.deepEqual(padded.tokens, seq);
        for (const probe of [[7], [8, 9], [10], [11, 12, 13, 14]]) {
          const a = (await ref.forward(probe))!.slice();
          const b = (await padded.forward(probe))!.slice();
          assert.equal(b.length, a.length);
          assert.ok(maxDiff(a, b) < 1e-4, `probe ${probe}`);
          assert.deepEqual(padded.tokens, ref.tokens);
        }
        const parents = ref.treeAttention ? [-1, -1] : [-1, 0]; // two siblings: a tree pass padded under the last one
        const a = (await ref.forward([20, 21], true, parents))!.slice();
        const b = (await padded.forward([20, 21], true, parents))!.slice();
        assert.ok(maxDiff(a, b) < 1e-4);
        for (const s of [ref, padded]) s.retain(seq.length + 8, [1]);
        const after = await Promise.all([ref, padded].map(async (s) => (await s.forward([22]))!.slice()));
        assert.ok(maxDiff(after[0], after[1]) < 1e-4);
        if (ref.hiddenSize > 0) assert.ok(maxDiff(ref.hiddenAt(seq.length + 8), padded.hiddenAt(seq.length + 8)) < 1e-4);
      });
    }

    it('grows its buffers past the initial capacity', async () => {
      const n = Math.min(300, readModelFolder(dir).maxPositions - 8);
      const long = Array.from({ length: n }, (_, i) => (i * 7 + 3) % 200);
      const ref = await fresh(long, [5], { prefillChunk: 300 });
      const s = await open({ prefillChunk: 64, initialCapacity: 32, bind: true });
      await s.prefill(long.slice(0, 100));
      await s.prefill(long);
      const logits = (await s.forward([5]))!;
      assert.ok(maxDiff(logits, ref.logits) < 1e-4);
    });
  });
}

// A draft tree in one pass (tree_mask + depth positions), and keeping one path of it.
for (const dir of [TINY_MODEL, INT8_MODEL, DEFAULT_MODEL]) {
  const spec = hasModel(dir) ? readModelFolder(dir) : undefined;
  describe(`verifier tree pass (${dir.split('/').slice(-1)[0]})`, { skip: !spec?.verifier.treeAttention && 'no tree_attention model' }, () => {
    const sessions: DecoderSession[] = [];
    const open = async (extra: Partial<DecoderOptions> = {}) => {
      const hs = spec!.verifier.hiddenStates;
      const s = await DecoderSession.create(spec!.verifier.file, spec!.verifier, {
        threads: 1,
        spinning: false,
        vocabSize: spec!.vocabSize,
        maxPositions: spec!.maxPositions,
        hiddenOutput: hs?.output,
        hiddenSize: hs?.size,
        treeAttention: true,
        ...extra,
      });
      sessions.push(s);
      return s;
    };
    after(async () => {
      for (const s of sessions) await s.dispose();
    });
    const prefix = Array.from({ length: 30 }, (_, i) => (i * 37 + 11) % 200);
    // node 0 is the pending token; the others branch: 0 -> {1, 2}, 1 -> {3, 4}, 2 -> {5}, 3 -> {6}, 5 -> {7}
    const parents = [-1, 0, 0, 1, 1, 2, 3, 5];
    const nodes = [17, 40, 41, 42, 43, 44, 45, 46];
    const pathOf = (i: number): number[] => (i < 0 ? [] : [...pathOf(parents[i]), i]);

    it("each node's logits equal a fresh prefill of its path", async () => {
      const s = await open();
      await s.prefill(prefix);
      const logits = (await s.forward(nodes, true, parents))!.slice();
      const vocab = spec!.vocabSize;
      for (let i = 0; i < nodes.length; i++) {
        const path = pathOf(i).map((j) => nodes[j]);
        const ref = await open();
        await ref.prefill([...prefix, ...path.slice(0, -1)]);
        const want = (await ref.forward(path.slice(-1)))!;
        assert.ok(maxDiff(logits.subarray(i * vocab, (i + 1) * vocab), want) < 1e-3, `node ${i}`);
      }
    });

    for (const bind of [false, true]) {
      it(`keeping the accepted path after a tree pass equals a fresh prefill of it${bind ? ' (bound outputs)' : ''}`, async () => {
        const kept = pathOf(7); // 0 -> 2 -> 5 -> 7: not a prefix of the pass
        const accepted = [...prefix, ...kept.map((j) => nodes[j])];
        const ref = await open({ bind });
        await ref.prefill(accepted);
        const want = (await ref.forward([5, 6]))!.slice();
        const s = await open({ bind });
        await s.prefill(prefix);
        await s.forward(nodes, true, parents);
        s.retain(prefix.length, kept);
        assert.deepEqual(s.tokens, accepted);
        const got = (await s.forward([5, 6]))!;
        assert.ok(maxDiff(got, want) < 1e-3);
        if (s.hiddenSize > 0) {
          for (let pos = prefix.length; pos < accepted.length; pos++) assert.ok(maxDiff(s.hiddenAt(pos), ref.hiddenAt(pos)) < 1e-3, `hidden at ${pos}`);
        }
      });
    }
  });
}

describe('verifier without tree_mask (conditioned-model: a plain layout)', { skip: !hasModel(CONDITIONED_MODEL) && 'model fixture missing' }, () => {
  it('verifies chains and refuses a branching tree with a named error', async () => {
    const spec = readModelFolder(CONDITIONED_MODEL);
    const s = await DecoderSession.create(spec.verifier.file, spec.verifier, {
      threads: 1,
      spinning: false,
      vocabSize: spec.vocabSize,
      maxPositions: spec.maxPositions,
    });
    try {
      assert.equal(s.treeAttention, false);
      await s.prefill([1, 2, 3]);
      await s.forward([4, 5], true, [-1, 0]);
      await assert.rejects(s.forward([6, 7], true, [-1, -1]), /no tree_mask input: it can verify chains only/);
    } finally {
      await s.dispose();
    }
  });
});
