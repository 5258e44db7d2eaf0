// The drafter interface: something that proposes the next tokens for the verifier to check.
import type { DrafterName } from '../api';
import type { PositionSource } from '../tree';

/** What a drafter sees at each pass. */
export interface DraftContext {
  /** The verified sequence: prompt tokens, then generated ones; the last is the pending token (not yet run by the verifier). */
  readonly tokens: readonly number[];
  /** How many of `tokens` are the prompt. */
  readonly promptLength: number;
  /** The first tokens of the text after the cursor ([] when there is none). */
  readonly suffixIds: readonly number[];
  /** The verifier's hidden state at position `pos` < tokens.length - 1 (only for drafters that use it). */
  hiddenAt?(pos: number): Float32Array;
  /** 0 = greedy drafts; > 0: drafters that can, sample and report the distributions they drew from. */
  readonly temperature: number;
  readonly topP: number;
  readonly rng: () => number;
  readonly signal?: AbortSignal;
  /** > 0: the loop builds draft trees; drafters that can report this many likeliest tokens per position. */
  readonly candidates: number;
}

export interface Draft {
  tokens: number[];
  /** probs[i]: the distribution tokens[i] was drawn from; absent = deterministic (a point mass). */
  probs?: Float32Array[];
  /**
   * confidence[i]: the drafter's probability for tokens[i] (may be shorter than tokens: positions
   * past a negligible joint probability are left out). Absent: the loop sends the whole draft.
   */
  confidence?: number[];
  /** positions[d]: the drafter's likeliest tokens at block position d (asked by ctx.candidates), for a draft tree. */
  positions?: PositionSource;
  /** Continuations from elsewhere (prompt lookup) to graft onto the tree, with their estimated acceptance per token. */
  branches?: { tokens: number[]; gains: number[] }[];
}

/** One pass's measured cost: drafting, then the verifier's pass (acceptance and cache roll-back included). */
export interface PassTiming {
  draftMs: number;
  verifyMs: number;
}

export interface Drafter {
  readonly name: DrafterName;
  /** Called once per request, after the verifier's prefill (may prefill a draft model). */
  begin(ctx: DraftContext): Promise<void>;
  /** Proposes up to `k` tokens to follow ctx.tokens (fewer, or none, when it has nothing good). */
  draft(ctx: DraftContext, k: number): Promise<Draft>;
  /**
   * Told how many drafted tokens the verifier kept, after each pass, the tokens that pass added
   * (kept ones, then the verifier's), and what the pass cost.
   */
  accept(accepted: number, added?: readonly number[], timing?: PassTiming): void;
  dispose(): Promise<void>;
}
