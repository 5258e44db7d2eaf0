import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptGreedy, acceptSampling, argmax, makeRng, maxProb, residual, sample, toProbs, TreeShape, walkTree } from '../../src/engine/acceptance';

describe('greedy acceptance', () => {
  const cases: { draft: number[]; targets: number[]; accepted: number; next: number }[] = [
    { draft: [], targets: [7], accepted: 0, next: 7 },
    { draft: [1, 2, 3], targets: [1, 2, 3, 4], accepted: 3, next: 4 },
    { draft: [1, 2, 3], targets: [1, 9, 3, 4], accepted: 1, next: 9 },
    { draft: [5, 2], targets: [1, 2, 3], accepted: 0, next: 1 },
  ];
  for (const c of cases) {
    it(`draft ${JSON.stringify(c.draft)} vs ${JSON.stringify(c.targets)}`, () => {
      assert.deepEqual(acceptGreedy(c.draft, c.targets), { accepted: c.accepted, next: c.next });
    });
  }
  it('argmax takes the first maximum', () => {
    assert.equal(argmax(new Float32Array([1, 3, 3, 2])), 1);
  });
});

describe('probabilities', () => {
  it('temperature 0 is a point mass on the argmax', () => {
    assert.deepEqual(Array.from(toProbs(new Float32Array([0, 2, 1]), 0)), [0, 1, 0]);
  });
  it('softmax sums to 1 and top-p keeps the smallest nucleus', () => {
    const p = toProbs(new Float32Array([Math.log(0.5), Math.log(0.3), Math.log(0.15), Math.log(0.05)]), 1, 0.75);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-6);
    assert.ok(Math.abs(p[0] - 0.625) < 1e-6 && Math.abs(p[1] - 0.375) < 1e-6 && p[2] === 0 && p[3] === 0);
  });
  it('residual is normalize(max(0, p - q))', () => {
    const r = residual(new Float32Array([0.5, 0.3, 0.2]), new Float32Array([0.2, 0.6, 0.2]), 0);
    assert.deepEqual(Array.from(r, (x) => +x.toFixed(6)), [1, 0, 0]);
    const point = residual(new Float32Array([0.5, 0.3, 0.2]), undefined, 0);
    assert.deepEqual(Array.from(point, (x) => +x.toFixed(6)), [0, 0.6, 0.4]);
  });
});

// The distribution of the first emitted token must equal the verifier's p whatever the drafter's q.
describe('speculative sampling preserves the verifier distribution', () => {
  const p = new Float32Array([0.45, 0.25, 0.15, 0.1, 0.05]);
  const q = new Float32Array([0.1, 0.15, 0.5, 0.05, 0.2]);
  const N = 40000;

  /** Pearson chi-square of the first-token frequencies against p (4 degrees of freedom). */
  function chiSquare(res: typeof residual, drafted: 'sampled' | 'deterministic', seed: number): number {
    const rng = makeRng(seed);
    const counts = new Array(p.length).fill(0);
    for (let n = 0; n < N; n++) {
      const x = drafted === 'sampled' ? sample(q, rng) : 2;
      const probs = drafted === 'sampled' ? [q] : undefined;
      const { accepted, next } = acceptSampling([x], probs, [p, p], rng, res);
      counts[accepted === 1 ? x : next]++;
    }
    return counts.reduce((s, c, i) => s + (c - N * p[i]) ** 2 / (N * p[i]), 0);
  }
  // chi-square(4) 99.9th percentile = 18.47
  const CRITICAL = 18.47;

  it('with a sampled draft (q drawn from a distribution)', () => {
    assert.ok(chiSquare(residual, 'sampled', 1) < CRITICAL);
  });
  it('with a deterministic draft (a point mass)', () => {
    assert.ok(chiSquare(residual, 'deterministic', 2) < CRITICAL);
  });
  it('catches a wrong residual step (resampling from p instead of max(0, p - q))', () => {
    const wrong: typeof residual = (pp) => pp.slice();
    assert.ok(chiSquare(wrong, 'sampled', 3) > CRITICAL * 5);
    assert.ok(chiSquare(wrong, 'deterministic', 4) > CRITICAL * 5);
  });
  it('catches a residual that forgets to clip at zero', () => {
    const unclipped: typeof residual = (pp, qq, x) => {
      const r = new Float32Array(pp.length);
      let s = 0;
      for (let i = 0; i < pp.length; i++) {
        r[i] = Math.abs(pp[i] - (qq ? qq[i] : i === x ? 1 : 0));
        s += r[i];
      }
      return r.map((v) => v / s);
    };
    assert.ok(chiSquare(unclipped, 'sampled', 5) > CRITICAL * 5);
  });
  it('a longer block: second-token distribution conditioned on the first matches p2', () => {
    const p2 = new Float32Array([0.1, 0.2, 0.3, 0.4, 0]);
    const q2 = new Float32Array([0.4, 0.3, 0.2, 0.05, 0.05]);
    const rng = makeRng(9);
    const counts = new Array(5).fill(0);
    let n2 = 0;
    for (let n = 0; n < N; n++) {
      const d = [sample(q, rng), sample(q2, rng)];
      const r = acceptSampling(d, [q, q2], [p, p2, p], rng);
      const emitted = [...d.slice(0, r.accepted), r.next];
      if (emitted.length >= 2) {
        counts[emitted[1]]++;
        n2++;
      }
    }
    const chi = counts.reduce((s, c, i) => (p2[i] > 0 ? s + (c - n2 * p2[i]) ** 2 / (n2 * p2[i]) : s), 0);
    assert.equal(counts[4], 0);
    assert.ok(chi < 16.27, `chi-square ${chi}`); // chi-square(3) 99.9th percentile
  });
});

// A draft tree: the first two emitted tokens must be distributed as the verifier's p(t1) p(t2 | t1),
// whichever nodes the walk went through.
describe('tree acceptance preserves the verifier distribution', () => {
  const V = 5;
  // root children 0, 2, 3; node 0 has children 1, 4; node 2 has child 0
  const tree: TreeShape = { tokens: [0, 2, 3, 1, 4, 0], parents: [-1, -1, -1, 0, 0, 1] };
  const pRoot = new Float32Array([0.35, 0.1, 0.3, 0.2, 0.05]);
  const pAfter = [
    new Float32Array([0.05, 0.5, 0.1, 0.05, 0.3]),
    new Float32Array([0.2, 0.2, 0.2, 0.2, 0.2]),
    new Float32Array([0.6, 0.1, 0.1, 0.1, 0.1]),
    new Float32Array([0.1, 0.1, 0.1, 0.1, 0.6]),
    new Float32Array([0.3, 0.3, 0.2, 0.1, 0.1]),
  ];
  const deeper = new Float32Array(V).fill(1 / V);
  /** The verifier's rows: row 0 the pending token, row i + 1 node i (a depth-1 node's row follows its token). */
  const rows = (row: number) => (row === 0 ? pRoot : tree.parents[row - 1] < 0 ? pAfter[tree.tokens[row - 1]] : deeper);
  const N = 60000;

  function chiSquare(target: (row: number) => Float32Array, seed: number): number {
    const rng = makeRng(seed);
    const counts = new Array(V * V).fill(0);
    for (let n = 0; n < N; n++) {
      const { path, next } = walkTree(tree, target, rng);
      const emitted = [...path.map((i) => tree.tokens[i]), next];
      // after a bonus token at depth 1, the next pass draws from the verifier itself
      if (emitted.length < 2) emitted.push(sample(pAfter[emitted[0]], rng));
      counts[emitted[0] * V + emitted[1]]++;
    }
    let chi = 0;
    for (let a = 0; a < V; a++) for (let b = 0; b < V; b++) chi += (counts[a * V + b] - N * pRoot[a] * pAfter[a][b]) ** 2 / (N * pRoot[a] * pAfter[a][b]);
    return chi;
  }
  // chi-square(24) 99.9th percentile = 51.18
  const CRITICAL = 51.18;

  it('with several children per node (the verifier token drawn, descending while it is a child)', () => {
    const chi = chiSquare(rows, 11);
    assert.ok(chi < CRITICAL, `chi-square ${chi}`);
  });
  it("catches a node scored with its parent's row", () => {
    const wrong = (row: number) => (row === 0 ? pRoot : rows(tree.parents[row - 1] + 1));
    assert.ok(chiSquare(wrong, 12) > CRITICAL * 5);
  });
  it("catches siblings sharing one row (the first sibling's)", () => {
    const wrong = (row: number) => (row > 0 && tree.parents[row - 1] < 0 ? pAfter[tree.tokens[0]] : rows(row));
    assert.ok(chiSquare(wrong, 13) > CRITICAL * 5);
  });
  it('greedy walks the argmax path and appends the bonus token', () => {
    const oneHot = (t: number) => Float32Array.from({ length: V }, (_, i) => (i === t ? 1 : 0));
    // pending -> 2 (node 1) -> 0 (node 5) -> bonus 4
    const argmaxRows = [oneHot(2), oneHot(3), oneHot(0), oneHot(1), oneHot(1), oneHot(1), oneHot(4)];
    assert.deepEqual(walkTree(tree, (r) => argmaxRows[r]), { path: [1, 5], next: 4 });
  });
});

describe('maxProb', () => {
  it('is the softmax probability of the argmax', () => {
    assert.ok(Math.abs(maxProb(new Float32Array([Math.log(0.7), Math.log(0.2), Math.log(0.1)])) - 0.7) < 1e-6);
  });
});
