// Acceptance rules of speculative decoding, as pure functions (tested on CPU without a model).

/** A seeded PRNG (mulberry32) returning floats in [0, 1). */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(row: Float32Array | number[], start = 0, end = row.length): number {
  let best = start;
  let bestValue = row[start];
  for (let i = start + 1; i < end; i++) {
    if (row[i] > bestValue) {
      bestValue = row[i];
      best = i;
    }
  }
  return best - start;
}

/**
 * What a verifier pass scored: a draft tree after the pending token. Node i's token follows its
 * parent's (parents[i] < i; -1: the pending token); a chain has parents[i] = i - 1. Row 0 of the
 * pass is the pending token, row i + 1 is node i.
 */
export interface TreeShape {
  readonly tokens: readonly number[];
  readonly parents: readonly number[];
  /** probs[i]: the distribution node i's token was sampled from; absent: chosen deterministically (a point mass). */
  readonly probs?: readonly (Float32Array | undefined)[];
}

/** children[row]: the nodes whose parent is at `row` (row 0 = the pending token, row i + 1 = node i). */
export function childrenByRow(tree: TreeShape): number[][] {
  const children: number[][] = Array.from({ length: tree.tokens.length + 1 }, () => []);
  tree.parents.forEach((p, i) => children[p + 1].push(i));
  return children;
}

/**
 * Acceptance of a draft tree, lossless: from the pending token, take the verifier's own next
 * token and descend while it is one of the drafted children; the first token that is not a child
 * is the bonus token. Returns the accepted nodes (root to leaf) and the bonus token.
 *
 * Greedy (rng absent): `target(row)` is the row's logits; the verifier's token is the argmax.
 * Sampling: `target(row)` is the verifier's sampling distribution (temperature, top-p). At a
 * node with one child, the step is speculative sampling against the distribution the child was
 * drawn from (Leviathan et al. 2022: keep x with probability min(1, p(x)/q(x)), else draw from
 * normalize(max(0, p - q))); with several children, the verifier's token is drawn from p itself.
 * Either way each emitted token is distributed exactly as the verifier's. Only the rows read are
 * asked for.
 */
export function walkTree(
  tree: TreeShape,
  target: (row: number) => Float32Array,
  rng?: () => number,
  residualFn: typeof residual = residual,
): { path: number[]; next: number } {
  const children = childrenByRow(tree);
  const path: number[] = [];
  let row = 0;
  for (;;) {
    const kids = children[row];
    const p = target(row);
    let token: number;
    if (!rng) {
      token = argmax(p);
    } else if (kids.length === 1) {
      const child = kids[0];
      const x = tree.tokens[child];
      const q = tree.probs?.[child];
      const qx = q ? q[x] : 1;
      if (!(qx > 0 && rng() < Math.min(1, p[x] / qx))) return { path, next: sample(residualFn(p, q, x), rng) };
      token = x;
    } else {
      token = sample(p, rng);
    }
    const child = kids.find((c) => tree.tokens[c] === token);
    if (child === undefined) return { path, next: token };
    path.push(child);
    row = child + 1;
  }
}

/**
 * Turns logits into the sampling distribution: softmax at `temperature`, then nucleus (top-p)
 * truncation and renormalization. Temperature 0 gives a point mass on the argmax.
 */
export function toProbs(logits: Float32Array, temperature: number, topP = 1): Float32Array {
  const n = logits.length;
  const p = new Float32Array(n);
  if (temperature <= 0) {
    p[argmax(logits)] = 1;
    return p;
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp((logits[i] - max) / temperature);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < n; i++) p[i] /= sum;
  if (topP < 1) {
    // Sort only the likely tokens; fall back to all of them if they do not reach topP.
    const sortedBy = (idx: number[]) => idx.sort((a, b) => p[b] - p[a]);
    let order = sortedBy(Array.from(p.keys()).filter((i) => p[i] >= 1e-4 / n));
    let cum = 0;
    let keep = 0;
    while (keep < order.length && cum < topP) cum += p[order[keep++]];
    if (cum < topP && order.length < n) {
      order = sortedBy(Array.from(p.keys()));
      cum = 0;
      keep = 0;
      while (keep < n && cum < topP) cum += p[order[keep++]];
    }
    const kept = new Float32Array(n);
    for (let j = 0; j < keep; j++) kept[order[j]] = p[order[j]] / cum;
    return kept;
  }
  return p;
}

export function sample(p: ArrayLike<number>, rng: () => number): number {
  let total = 0;
  for (let i = 0; i < p.length; i++) total += p[i];
  let r = rng() * total;
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p[i] <= 0) continue;
    last = i;
    r -= p[i];
    if (r < 0) return i;
  }
  return last;
}

/** normalize(max(0, p - q)): where to resample after a rejection. `q` undefined = point mass on `x`. */
export function residual(p: Float32Array, q: Float32Array | undefined, x: number): Float32Array {
  const r = new Float32Array(p.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    const qi = q ? q[i] : i === x ? 1 : 0;
    const d = p[i] - qi;
    if (d > 0) {
      r[i] = d;
      sum += d;
    }
  }
  if (sum <= 0) return p.slice();
  for (let i = 0; i < r.length; i++) r[i] /= sum;
  return r;
}

/**
 * Speculative sampling (Leviathan et al. 2022): drafted token x_i is kept with probability
 * min(1, p_i(x)/q_i(x)); at the first rejection the next token is drawn from the residual
 * normalize(max(0, p_i - q_i)); when every drafted token is kept, from p_k. `targetProbs` has
 * draft.length + 1 rows (or computes row i on demand: only the rows read are computed); `draftProbs[i]` is the distribution token i was drawn from (undefined:
 * a deterministic drafter, a point mass). The output is distributed exactly as the verifier's.
 */
export function acceptSampling(
  draft: readonly number[],
  draftProbs: readonly (Float32Array | undefined)[] | undefined,
  targetProbs: readonly Float32Array[] | ((i: number) => Float32Array),
  rng: () => number,
  residualFn: typeof residual = residual,
): { accepted: number; next: number } {
  const target = typeof targetProbs === 'function' ? targetProbs : (i: number) => targetProbs[i];
  const { path, next } = walkTree(chain(draft, draftProbs), target, rng, residualFn);
  return { accepted: path.length, next };
}

/** Greedy acceptance of a chain: `targets[i]` is the verifier's argmax after the first i drafted tokens. */
export function acceptGreedy(draft: readonly number[], targets: readonly number[]): { accepted: number; next: number } {
  const { path, next } = walkTree(chain(draft), (row) => oneHot(targets[row]));
  return { accepted: path.length, next };
}

function chain(tokens: readonly number[], probs?: readonly (Float32Array | undefined)[]): TreeShape {
  return { tokens, parents: tokens.map((_, i) => i - 1), probs };
}

function oneHot(token: number): Float32Array {
  const row = new Float32Array(token + 1);
  row[token] = 1;
  return row;
}

/** ln softmax(row)[token]: the log-probability of `token` under the distribution the logits define. */
export function logProbOf(row: Float32Array, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return row[token] - max - Math.log(sum);
}

/** Softmax probability of the row's argmax (the drafter's confidence in its greedy token). */
export function maxProb(row: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  if (max === Infinity) return 1;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  return 1 / sum;
}
