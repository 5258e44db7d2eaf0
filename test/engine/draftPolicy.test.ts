// The draft-length policy on its own (no model): the one sizing rule, the block size learned from
// passes, the probe schedule, the calibration it learns from what the walk kept.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseNodeCount, DraftPolicy } from '../../src/engine/draftPolicy';
import { PassTimeModel } from '../../src/engine/stats';
import { chainTree } from '../../src/engine/tree';

const linear = (perToken: number) => (q: number) => 10 + perToken * (q - 1);
/** Running products: a chain's gains from its per-token confidence. */
const chain = (conf: number[]): number[] => {
  let s = 1;
  return conf.map((c) => (s *= c));
};

describe('the sizing rule (chooseNodeCount)', () => {
  it('sends the whole block when the drafter is sure and extra tokens are cheap', () => {
    assert.equal(chooseNodeCount(chain([1, 1, 1, 1]), linear(0.5)), 4);
  });
  it('sends nothing when the drafter is hopeless', () => {
    assert.equal(chooseNodeCount(chain([0.001, 0.5]), linear(0.5)), 0);
  });
  it('stops where the expected gain no longer pays for the longer pass', () => {
    // expected tokens: n=0: 1, n=1: 1.9, n=2: 2.71, n=3: 2.791 (third token nearly hopeless)
    assert.equal(chooseNodeCount(chain([0.9, 0.9, 0.1]), linear(1)), 2);
  });
  it('a tree sends the node count with the best expected tokens per millisecond', () => {
    assert.equal(chooseNodeCount([0.6, 0.3, 0.02, 0.01], linear(1)), 2);
    assert.equal(chooseNodeCount([0.6, 0.3, 0.02, 0.01], linear(0)), 4);
    assert.equal(chooseNodeCount([0.6, 0.3], () => 10), 2);
    assert.equal(chooseNodeCount([0.6, 0.3], linear(20)), 0);
  });
  it('a probe drafts at least one token even when drafting does not pay', () => {
    assert.equal(chooseNodeCount([0.6, 0.3], linear(20), true), 1);
  });
});

describe('DraftPolicy', () => {
  // a + b * past = 10 ms, each extra token in a pass +5%: pass(q) = 10 + 0.5 * (q - 1)
  const timed = () => new PassTimeModel(10, 0, 0.05);

  it('keeps asking for the whole block while everything is accepted', () => {
    const p = new DraftPolicy(timed());
    for (let i = 0; i < 50; i++) p.observeBlock(16, 2, 16, 16);
    assert.equal(p.draftLength(16, 0), 16);
  });
  it('asks for a short block when only the first tokens are ever accepted', () => {
    const p = new DraftPolicy(timed());
    for (let i = 0; i < 200; i++) p.observeBlock(16, 1, 16, i % 2);
    const k = p.draftLength(16, 0);
    assert.ok(k >= 1 && k <= 3, `k = ${k}`);
  });
  it('stops drafting when it never pays, probing less and less often', () => {
    const p = new DraftPolicy(timed());
    for (let i = 0; i < 200; i++) p.observeBlock(4, 8, 4, 0);
    const probes: number[] = [];
    for (let i = 1; i <= 120; i++) {
      const k = p.draftLength(16, 0);
      if (k > 0) {
        probes.push(i);
        p.observeBlock(k, 8, k, 0); // the probe fails
      }
    }
    assert.deepEqual(probes, [8, 24, 56, 120]);
  });
  it('a drafter that skips itself (the lookup hybrid) probes on the same schedule, reset by an accepted probe', () => {
    const p = new DraftPolicy(timed(), { sizeBeforeDraft: false });
    const failed = chainTree([1, 2], undefined, [0.5, 0.5]);
    const probes: number[] = [];
    for (let i = 1; i <= 60; i++) {
      if (!p.probe()) continue;
      probes.push(i);
      p.observe(failed, i === 24 ? [0] : []); // the second probe's first token is accepted
    }
    assert.deepEqual(probes, [8, 24, 32, 48]);
  });
  it('without sizing before drafting, asks for the whole block', () => {
    const p = new DraftPolicy(timed(), { sizeBeforeDraft: false });
    for (let i = 0; i < 200; i++) p.observeBlock(4, 8, 4, 0);
    assert.equal(p.draftLength(16, 0), 16);
  });
  it('learns drafting time as a line in k', () => {
    const p = new DraftPolicy(timed());
    for (let i = 0; i < 40; i++) p.observeBlock(4 + (i % 8), 1 + 0.5 * (4 + (i % 8)), 4, 4);
    assert.ok(Math.abs(p.draftMs(10) - 6) < 0.01);
  });
  it('sends the nodes that pay for the time already spent drafting', () => {
    const p = new DraftPolicy(timed());
    assert.equal(p.nodeCount([0.9, 0.8, 0.7, 0.01], 4, 0, 0), 3);
    assert.equal(p.nodeCount([0.9, 0.8, 0.7, 0.01], 2, 0, 0), 2, 'never more than room');
  });
  it('learns from the walk how often its confident tokens are accepted', () => {
    const p = new DraftPolicy(timed());
    const before = p.calibration.p(0.95);
    const tree = chainTree([1, 2, 3], undefined, [0.95, 0.95, 0.95]);
    for (let i = 0; i < 30; i++) p.observe(tree, []); // the first token is rejected every time
    assert.ok(p.calibration.p(0.95) < before / 2, `p(0.95) = ${p.calibration.p(0.95)}`);
  });
});
