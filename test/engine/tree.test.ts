// Draft-tree construction (best-first under a node budget, grafted branches) on crafted inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildTree, chainTree, DraftTree, graftBranch, PositionCandidates, topCandidates, treeDepth, truncateTree } from '../../src/engine/tree';
import { DraftPolicy } from '../../src/engine/draftPolicy';
import { draftTree } from '../../src/engine/speculative';
import { PassTimeModel } from '../../src/engine/stats';

const positions: PositionCandidates[] = [
  { tokens: [10, 11, 12], probs: [0.6, 0.25, 0.15] },
  { tokens: [20, 21, 22], probs: [0.5, 0.4, 0.1] },
  { tokens: [30, 31, 32], probs: [0.9, 0.06, 0.04] },
];

/** Every path of the candidates with its probability product, best first. */
function allPaths(): { path: number[]; p: number }[] {
  const out: { path: number[]; p: number }[] = [];
  const go = (path: number[], p: number) => {
    if (path.length > 0) out.push({ path, p });
    const d = path.length;
    if (d === positions.length) return;
    positions[d].tokens.forEach((t, r) => go([...path, t], p * positions[d].probs[r]));
  };
  go([], 1);
  return out.sort((a, b) => b.p - a.p);
}

const pathOf = (tree: DraftTree, i: number): number[] => (i < 0 ? [] : [...pathOf(tree, tree.parents[i]), tree.tokens[i]]);

function assertPrefixClosed(tree: DraftTree): void {
  tree.parents.forEach((p, i) => assert.ok(p < i, `node ${i}'s parent ${p} comes after it`));
  tree.parents.forEach((p, i) => p >= 0 && assert.ok(tree.gains[i] <= tree.gains[p] + 1e-12, `node ${i} gains more than its parent`));
}

describe('draft tree construction', () => {
  for (const budget of [1, 2, 5, 9, 20]) {
    it(`budget ${budget}: the ${budget} likeliest paths, every prefix a tree`, () => {
      const tree = buildTree(positions, budget);
      assert.equal(tree.tokens.length, Math.min(budget, 39));
      assertPrefixClosed(tree);
      const want = allPaths().slice(0, budget);
      const got = tree.tokens.map((_, i) => pathOf(tree, i));
      // ties aside, the same set of paths, with their path probabilities as gains
      for (const [i, w] of want.entries()) assert.ok(Math.abs(tree.gains[i] - w.p) < 1e-12, `gain ${i}`);
      assert.deepEqual(
        got.map((p) => p.join(',')).sort(),
        want.map((w) => w.path.join(',')).sort(),
      );
    });
  }
  it('one candidate per position is the chain', () => {
    const chain = positions.map((p) => ({ tokens: p.tokens.slice(0, 1), probs: p.probs.slice(0, 1) }));
    const tree = buildTree(chain, 64);
    assert.deepEqual(tree.tokens, [10, 20, 30]);
    assert.deepEqual(tree.parents, [-1, 0, 1]);
    assert.deepEqual(chainTree([10, 20, 30], undefined, [0.6, 0.5, 0.9]).gains.map((g) => +g.toFixed(6)), tree.gains.map((g) => +g.toFixed(6)));
  });
  it('calibration reshapes the chances: the likeliest token calibrated, the rest sharing what is left', () => {
    const tree = buildTree(positions.slice(0, 1), 3, () => 0.2);
    // top: 0.2; others: 0.8 * 0.25 / 0.4 = 0.5 and 0.8 * 0.15 / 0.4 = 0.3
    assert.deepEqual(tree.tokens, [11, 12, 10]);
    assert.deepEqual(tree.gains.map((g) => +g.toFixed(6)), [0.5, 0.3, 0.2]);
    assert.deepEqual(tree.rank, [1, 2, 0]);
    // and the budget takes the likeliest by those chances, not by the drafter's order
    assert.deepEqual(buildTree(positions.slice(0, 1), 2, () => 0.2).tokens, [11, 12]);
  });
  it('grafting a lookup branch shares the nodes it has in common and adds the rest', () => {
    const tree = buildTree(positions, 4); // 10, 10-20, 10-20-30, 11
    const grafted = graftBranch(tree, [10, 21, 31, 40], [0.9, 0.8, 0.7, 0.6]);
    assertPrefixClosed(grafted);
    assert.equal(grafted.tokens.length, 7);
    const paths = grafted.tokens.map((_, i) => pathOf(grafted, i).join(','));
    for (const p of ['10', '10,21', '10,21,31', '10,21,31,40', '10,20', '10,20,30', '11']) assert.ok(paths.includes(p), p);
    // a shared node keeps the higher of the two estimates
    assert.equal(grafted.gains[paths.indexOf('10')], 0.9);
    assert.equal(grafted.rank[paths.indexOf('10,21,31,40')], -1);
    // cut anywhere, it stays a tree
    for (let n = 0; n <= grafted.tokens.length; n++) assertPrefixClosed(truncateTree(grafted, n));
    assert.equal(treeDepth(grafted), 4);
  });
  it('top candidates of a row, highest first, above the floor', () => {
    assert.deepEqual(topCandidates([0.1, 0.5, 0, 0.3, 0.05], 3), { tokens: [1, 3, 0], probs: [0.5, 0.3, 0.1] });
    assert.deepEqual(topCandidates([-3, -1, -2], 2, -Infinity), { tokens: [1, 2], probs: [-1, -2] });
  });
});

describe('the pass sends the drafter\'s nodes within the budget, lookup nodes on top, trimmed by the cost model', () => {
  const policy = (perExtraToken: number) => new DraftPolicy(new PassTimeModel(10, 0, perExtraToken), { sizeBeforeDraft: false });
  const lookup = (rate: number, n = 10) => ({ tokens: Array.from({ length: n }, (_, j) => 100 + j), gains: Array.from({ length: n }, (_, j) => rate ** (j + 1)) });

  it('a lookup-only pass sends its whole chain past the budget when its chances are good', () => {
    const t = draftTree({ tokens: [], branches: [lookup(0.95)] }, 4, 1000, policy(0.02), { draftMs: 0, past: 100 });
    assert.equal(t.tokens.length, 10);
    assert.ok(t.rank.every((r) => r === -1));
  });

  it('the cost model cuts a lookup chain whose chances are poor', () => {
    const t = draftTree({ tokens: [], branches: [lookup(0.3)] }, 4, 1000, policy(0.1), { draftMs: 0, past: 100 });
    assert.ok(t.tokens.length < 4, `sent ${t.tokens.length} nodes of a chain accepted token by token at 0.3`);
  });

  it('with diffusion candidates, the budget bounds the drafter\'s nodes only', () => {
    const t = draftTree({ tokens: [10, 20, 30], positions, branches: [lookup(0.95, 6)] }, 2, 1000, policy(0.01));
    assert.equal(t.rank.filter((r) => r >= 0).length, 2);
    assert.equal(t.rank.filter((r) => r < 0).length, 6);
  });

  it('without trees (budget 0) the chain goes as drafted and branches are ignored', () => {
    const t = draftTree({ tokens: [10, 20, 30], branches: [lookup(0.95, 6)] }, 0, 1000, policy(0.01));
    assert.deepEqual(t.tokens, [10, 20, 30]);
  });
});
