// Prompt lookup decoding: find the latest earlier occurrence of the last n tokens (n = maxN..minN)
// in the prompt and the text generated so far, and propose what followed it.
import type { Draft, DraftContext, Drafter } from './types';

/** The tokens that followed the latest earlier match of the last n tokens, up to k of them. */
export function promptLookup(tokens: readonly number[], k: number, maxN = 3, minN = 1): number[] {
  return lookupMatch(tokens, k, maxN, minN).tokens;
}

/** Like promptLookup, also telling the length n of the suffix that matched (0: no match). */
export function lookupMatch(tokens: readonly number[], k: number, maxN = 3, minN = 1): { tokens: number[]; n: number } {
  const [first] = lookupMatches(tokens, k, 1, maxN, minN);
  return first ? { tokens: first.tokens, n: first.n } : { tokens: [], n: 0 };
}

/**
 * Up to `maxBranches` different continuations for draft trees: what followed the latest match of
 * the longest suffix that matches (lookupMatch's), then what followed earlier matches where it
 * differs, then matches of shorter suffixes. `rank`: the order found (0 = lookupMatch's).
 */
export function lookupMatches(
  tokens: readonly number[],
  k: number,
  maxBranches: number,
  maxN = 3,
  minN = 1,
): { tokens: number[]; n: number; rank: number }[] {
  const len = tokens.length;
  const found: { tokens: number[]; n: number; rank: number }[] = [];
  const known = (c: number[]) => found.some((f) => c.every((t, i) => f.tokens[i] === t));
  for (let n = Math.min(maxN, len - 1); n >= minN && found.length < maxBranches; n--) {
    for (let i = len - n - 1; i >= 0 && found.length < maxBranches; i--) {
      let j = 0;
      while (j < n && tokens[i + j] === tokens[len - n + j]) j++;
      if (j < n) continue;
      const from = i + n;
      const c = tokens.slice(from, Math.min(from + k, len));
      if (c.length > 0 && !known(c)) found.push({ tokens: c, n, rank: found.length });
    }
  }
  return found;
}

export class NgramDrafter implements Drafter {
  readonly name = 'ngram' as const;
  constructor(
    private readonly maxN = 3,
    private readonly minN = 1,
  ) {}
  async begin(): Promise<void> {}
  async draft(ctx: DraftContext, k: number): Promise<Draft> {
    return { tokens: promptLookup(ctx.tokens, k, this.maxN, this.minN) };
  }
  accept(): void {}
  async dispose(): Promise<void> {}
}
