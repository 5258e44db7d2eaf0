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
 * Greedy acceptance: `targets[i]` is the verifier's argmax after the pending token and the first i
 * drafted tokens (targets.length = draft.length + 1). Keeps the longest drafted prefix equal to
 * the verifier's own choices, then the verifier's token at the first disagreement (the bonus).
 */
export function acceptGreedy(draft: readonly number[], targets: readonly number[]): { accepted: number; next: number } {
  let n = 0;
  while (n < draft.length && draft[n] === targets[n]) n++;
  return { accepted: n, next: targets[n] };
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
  for (let i = 0; i < draft.length; i++) {
    const x = draft[i];
    const p = target(i);
    const q = draftProbs?.[i];
    const qx = q ? q[x] : 1;
    if (qx > 0 && rng() < Math.min(1, p[x] / qx)) continue;
    return { accepted: i, next: sample(residualFn(p, q, x), rng) };
  }
  return { accepted: draft.length, next: sample(target(draft.length), rng) };
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

/**
 * How many drafted tokens to send to the verifier: the k that maximizes expected new tokens per
 * millisecond, (1 + sum_{j<=k} prod_{i<=j} conf_i) / cost(k + 1), where conf_i is the drafter's
 * probability for its token i and cost(q) the expected time of a pass with q tokens. The choice
 * depends only on the drafter, so acceptance stays exact.
 */
export function chooseDraftLength(conf: readonly number[], cost: (q: number) => number): number {
  let best = 0;
  let bestRate = 1 / cost(1);
  let expected = 1;
  let survive = 1;
  for (let k = 1; k <= conf.length; k++) {
    survive *= conf[k - 1];
    expected += survive;
    const rate = expected / cost(k + 1);
    if (rate > bestRate) {
      best = k;
      bestRate = rate;
    }
  }
  return best;
}
