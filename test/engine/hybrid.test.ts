// The lookup hybrid's choice to run the diffusion drafter, on its own (no model): it keeps
// drafting while the passes that ran the drafter make more tokens per millisecond than a plain
// pass, and skips the drafter (but for the policy's probes) while they make fewer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DraftPolicy } from '../../src/engine/draftPolicy';
import type { DiffusionDrafter } from '../../src/engine/drafters/diffusion';
import { LookupHybridDrafter } from '../../src/engine/drafters/hybrid';
import { guarded } from '../../src/engine/index';
import type { DraftContext } from '../../src/engine/drafters/types';
import { PassTimeModel } from '../../src/engine/stats';

/** Counts its passes; always drafts the same confident block. */
class CountingDrafter {
  passes = 0;
  async begin(): Promise<void> {}
  async draft(): Promise<{ tokens: number[]; confidence: number[] }> {
    this.passes++;
    return { tokens: [900, 901, 902], confidence: [0.9, 0.9, 0.9] };
  }
  accept(): void {}
}

/** 40 passes over a sequence with nothing to look up; each pass that ran the drafter costs `ms` and keeps `accepted`. */
async function run(accepted: number, ms: number, candidates = 0): Promise<{ deerPasses: number; plain: number }> {
  const deer = new CountingDrafter();
  const plainPassMs = 10; // a one-token pass: 0.1 tokens per ms
  const hybrid = new LookupHybridDrafter(deer as unknown as DiffusionDrafter, new DraftPolicy(new PassTimeModel(plainPassMs, 0), { sizeBeforeDraft: false }));
  const tokens = Array.from({ length: 20 }, (_, i) => i); // no repeated token: no lookup match
  let plain = 0;
  for (let i = 0; i < 40; i++) {
    const ctx: DraftContext = { tokens, promptLength: 10, suffixIds: [], temperature: 0, topP: 1, rng: Math.random, candidates };
    const before = deer.passes;
    const d = await hybrid.draft(ctx, 3);
    const ran = deer.passes > before;
    if (d.tokens.length === 0) plain++;
    hybrid.accept(ran ? accepted : 0, [], { draftMs: ran ? ms / 2 : 0, verifyMs: ran ? ms / 2 : plainPassMs });
  }
  return { deerPasses: deer.passes, plain };
}

describe('the lookup hybrid runs its drafter while that pays', () => {
  for (const candidates of [0, 8]) {
    const mode = candidates > 0 ? 'tree' : 'chain';
    it(`keeps drafting while drafted passes beat a plain pass (${mode})`, async () => {
      const r = await run(2, 20); // 3 tokens in 20 ms = 0.15 per ms > 0.1
      // every 16th pass goes without the drafter, to measure that side too (plain here: 0.1 per ms)
      assert.ok(r.deerPasses >= 37, `drafter ran ${r.deerPasses} times`);
      assert.equal(r.plain, 40 - r.deerPasses);
    });
    it(`falls back to plain passes, probing on the policy's schedule, while they lose (${mode})`, async () => {
      const r = await run(1, 40); // 2 tokens in 40 ms = 0.05 per ms < 0.1
      // the first pass measures; then a probe every 8th skipped pass (the loop, not run here, would space failed probes further)
      assert.ok(r.deerPasses >= 2 && r.deerPasses <= 6, `drafter ran ${r.deerPasses} times`);
      assert.equal(r.plain, 40 - r.deerPasses);
    });
  }
});

describe('the engine hands drafters what each pass did', () => {
  it('the failure guard passes the added tokens and the timing through', () => {
    const seen: unknown[][] = [];
    const inner = { name: 'deer' as const, begin: async () => {}, draft: async () => ({ tokens: [] }), accept: (...a: unknown[]) => void seen.push(a), dispose: async () => {} };
    guarded('deer', inner).accept(2, [5, 6, 7], { draftMs: 1, verifyMs: 2 });
    assert.deepEqual(seen, [[2, [5, 6, 7], { draftMs: 1, verifyMs: 2 }]]);
  });
});

describe('the lookup hybrid grafts several lookup continuations onto a draft tree', () => {
  // suffix [2 7 8]: [2 7 8]→5 6 (n 3), then [7 8]→3 4 (n 2), then [8]→0 2 (n 1)
  const tokens = [1, 7, 8, 3, 4, 2, 7, 8, 5, 6, 4, 8, 0, 2, 7, 8];
  const ctx: DraftContext = { tokens, promptLength: 10, suffixIds: [], temperature: 0, topP: 1, rng: Math.random, candidates: 8 };
  const hybrid = (branches: number) =>
    new LookupHybridDrafter(new CountingDrafter() as unknown as DiffusionDrafter, new DraftPolicy(new PassTimeModel(10, 0), { sizeBeforeDraft: false }), branches);

  it('one branch per different continuation, latest match first; one when asked for one', async () => {
    const d = await hybrid(3).draft(ctx, 2);
    assert.deepEqual(d.branches?.map((b) => b.tokens), [[5, 6], [3, 4], [0, 2]]);
    assert.deepEqual((await hybrid(1).draft(ctx, 2)).branches?.map((b) => b.tokens), [[5, 6]]);
  });

  it('learns how often each rank of branch is right', async () => {
    const h = hybrid(3);
    for (let i = 0; i < 12; i++) {
      await h.draft(ctx, 2);
      h.accept(0, [3, 4, 1], { draftMs: 1, verifyMs: 1 }); // the verifier wrote the second branch
    }
    const gains = (await h.draft(ctx, 2)).branches!.map((b) => b.gains[0]);
    assert.ok(gains[1] > 0.8 && gains[0] < 0.2 && gains[2] < 0.2, `first-token gains by rank: ${gains.map((g) => g.toFixed(2))}`);
  });
});
