// The speculative loop (llama.cpp speculative-simple shape): draft; run the verifier on
// [pending, draft...] in one pass (a chain, or a draft tree when the verifier takes tree_mask);
// accept the path the verifier agrees with plus one verifier token; keep only that path in the
// verifier's cache; check stop conditions; stream the stable text.
import type { CompletionCallbacks, CompletionResult, StopReason } from './api';
import { ENGINE_DEFAULTS } from './defaults';
import { logProbOf, makeRng, toProbs, walkTree } from './acceptance';
import type { DraftPolicy } from './draftPolicy';
import type { Draft, DraftContext, Drafter } from './drafters/types';
import { StatsRecorder } from './stats';
import { DeerTokenizer, StreamDecoder } from './tokenizer';
import { buildTree, chainTree, DraftTree, graftBranch, truncateTree } from './tree';
import type { DecoderSession } from './verifier';

export interface LoopRequest {
  prompt: number[];
  suffixIds: number[];
  maxNewTokens: number;
  blockSize: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  stopAt?: (generated: string) => number | null;
  /** Characters at the end of the text not to stream yet (what stopAt may still cut). */
  holdback?: (generated: string) => number;
  /** Trim each draft to the length with the best expected tokens per millisecond (drafters that report confidence). */
  adaptive?: boolean;
  /** > 0: most draft-tree nodes per pass (drafters that report per-position candidates, verifiers with tree_mask); 0: chains. */
  treeBudget?: number;
  /** Record each generated token's log-probability (CompletionResult.tokenLogprobs). */
  logprobs?: boolean;
  /**
   * Token healing: text at the end of the user's prefix that the prompt leaves out (it may end
   * mid-token, e.g. `return ` or a half-typed word); the first tokens must spell it again (plain
   * decoding steps, the verifier's distribution restricted to tokens that agree with it), and it
   * is not part of the output.
   */
  heal?: string;
}

/** Text bookkeeping: stop strings, the caller's rule, and what has been streamed. */
export class TextTracker {
  text = '';
  private emitted = 0;
  private readonly maxStop: number;

  constructor(
    private readonly stops: readonly string[],
    private readonly rule: ((generated: string) => number | null) | undefined,
    private readonly onChunk?: (text: string) => void,
    private readonly ruleHoldback?: (text: string) => number,
  ) {
    this.maxStop = stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** Adds stable text; returns why to stop, or null. Emits what can no longer be cut. */
  add(chunk: string, final = false): 'stop' | 'rule' | null {
    const before = this.text.length;
    this.text += chunk;
    let reason: 'stop' | 'rule' | null = null;
    if (chunk.length > 0 && this.maxStop > 0) {
      const from = Math.max(0, before - this.maxStop + 1);
      let cut = -1;
      for (const s of this.stops) {
        if (s.length === 0) continue;
        const i = this.text.indexOf(s, from);
        if (i >= 0 && (cut < 0 || i < cut)) cut = i;
      }
      if (cut >= 0) {
        this.text = this.text.slice(0, Math.max(cut, this.emitted));
        reason = 'stop';
      }
    }
    if (reason === null && this.rule && chunk.length > 0) {
      // The rule sees every prefix the text went through, so where it cuts does not depend on how
      // the text arrived (a drafted pass adds many tokens at once, plain decoding one): the output
      // stays identical across drafters.
      for (let end = before + 1; end <= this.text.length && reason === null; end++) {
        const cut = this.rule(this.text.slice(0, end));
        if (cut !== null && cut !== undefined) {
          this.text = this.text.slice(0, Math.max(0, Math.min(end, Math.max(cut, this.emitted))));
          reason = 'rule';
        }
      }
    }
    const end = reason !== null || final ? this.text.length : this.text.length - Math.max(this.holdback(), this.ruleHoldback?.(this.text) ?? 0);
    if (end > this.emitted) {
      this.onChunk?.(this.text.slice(this.emitted, end));
      this.emitted = end;
    }
    return reason;
  }

  /** Length of the longest end of the text that could be the start of a stop string. */
  private holdback(): number {
    let best = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.text.length); n > best; n--) {
        if (this.text.endsWith(s.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}

/** What the loop runs on: the verifier's session, the drafter, the tokenizer. */
export interface LoopParts {
  verifier: DecoderSession;
  drafter: Drafter;
  tokenizer: DeerTokenizer;
}

/**
 * One completion: draft (as long as the policy says), verify [pending, draft...] in one pass,
 * accept the path the verifier agrees with plus its own next token, roll the cache back to that
 * path, stop on a rule, a stop string, end-of-text or the token limit.
 */
export async function runLoop({ verifier, drafter, tokenizer }: LoopParts, req: LoopRequest, policy: DraftPolicy, cb: CompletionCallbacks = {}): Promise<CompletionResult> {
  const t0 = performance.now();
  const signal = cb.signal;
  const prompt = req.prompt;
  const stats = new StatsRecorder(drafter.name, prompt.length, 0);
  const reused = await verifier.prefill(prompt.slice(0, -1), signal);
  stats.stats.reusedTokens = reused;

  const tokens = prompt.slice(); // verified sequence; the last one is pending (not in the verifier's cache)
  const rng = makeRng(req.seed);
  const treeBudget = verifier.treeAttention ? Math.max(0, Math.floor(req.treeBudget ?? 0)) : 0;
  stats.stats.trees = treeBudget > 0;
  const ctx: DraftContext = {
    candidates: treeBudget > 0 ? ENGINE_DEFAULTS.treeCandidates : 0,
    tokens,
    promptLength: prompt.length,
    suffixIds: req.suffixIds,
    hiddenAt: verifier.hiddenSize > 0 ? (pos) => verifier.hiddenAt(pos) : undefined,
    temperature: req.temperature,
    topP: req.topP,
    rng,
    signal,
  };
  if (!signal?.aborted) await drafter.begin(ctx);
  const tDecode = performance.now();
  stats.stats.prefillMs = tDecode - t0;

  const passTime = policy.passTime;
  const decoder = new StreamDecoder(tokenizer);
  const tracker = new TextTracker(req.stop, req.stopAt, cb.onChunk, req.holdback);
  const generated: number[] = [];
  const logprobs: number[] = [];
  const vocab = verifier.vocabSize;
  let stopReason: StopReason = 'max_tokens';
  // Token healing: `owed` is what the next tokens must still spell, `skip` what of it is still to be cut from the text.
  let owed = req.heal ?? '';
  let skip = owed.length;
  const cut = (text: string): string => {
    const n = Math.min(skip, text.length);
    skip -= n;
    return text.slice(n);
  };

  while (generated.length < req.maxNewTokens) {
    if (signal?.aborted) {
      stopReason = 'aborted';
      break;
    }
    const remaining = req.maxNewTokens - generated.length;
    // The pass holds [pending, drafts...]: keep within the model's positions.
    const kMax = Math.min(req.blockSize, remaining - 1, verifier.maxPositions - verifier.length - 1);
    const past = verifier.length;
    // Draft lengths by measured times (lossless), once there are times to go by.
    const adaptive = req.adaptive === true && policy.timed;
    const k = owed !== '' ? 0 : adaptive ? policy.draftLength(kMax, past) : kMax;
    const td = performance.now();
    const draft = k > 0 ? await drafter.draft(ctx, k) : { tokens: [] };
    if (draft.tokens.length > k) draft.tokens.length = k;
    const draftMs = performance.now() - td;
    const tree = draftTree(draft, treeBudget, verifier.maxPositions - verifier.length - 1, policy, adaptive ? { draftMs, past } : undefined);
    stats.stats.draftedTokens = (stats.stats.draftedTokens ?? 0) + tree.tokens.length;

    const tv = performance.now();
    const logits = (await verifier.forward([tokens[tokens.length - 1], ...tree.tokens], true, [-1, ...tree.parents.map((p) => p + 1)]))!;
    // Only the rows on the walked path are read. While healing, row 0 allows only tokens that agree with the owed text.
    const healing = owed !== '' ? restrict(logits.subarray(0, vocab), tokenizer.healingIds(owed)) : undefined;
    const row = (r: number) => (r === 0 && healing ? healing : logits.subarray(r * vocab, (r + 1) * vocab));
    const { path, next } = req.temperature > 0 ? walkTree(tree, (r) => toProbs(row(r), req.temperature, req.topP), rng) : walkTree(tree, row);
    const accepted = path.length;
    verifier.retain(past + 1, path);
    const verifyMs = performance.now() - tv;
    passTime.observePass(tree.tokens.length + 1, past, verifyMs);
    let fresh = [...path.map((i) => tree.tokens[i]), next];
    if (healing) {
      const text = tokenizer.tokenText(next);
      owed = text.startsWith(owed) ? '' : owed.slice(text.length);
    }
    drafter.accept(accepted, fresh, { draftMs, verifyMs });
    policy.observe(tree, path, adaptive ? { asked: k, draftMs } : undefined);

    // End-of-text, or any other control token: it ends the completion and is never shown.
    const eosAt = fresh.findIndex((t) => tokenizer.isControl(t));
    const endedBy = eosAt >= 0 ? fresh[eosAt] : undefined;
    if (eosAt >= 0) fresh = fresh.slice(0, eosAt);
    stats.pass(accepted, fresh.length, draftMs, verifyMs, fresh.length * passTime.predict(past + fresh.length / 2));
    for (const [j, t] of fresh.entries()) {
      tokens.push(t);
      generated.push(t);
      // fresh[j] was predicted by its parent's row: the pending token's (0) for the first, then the path's nodes.
      if (req.logprobs) logprobs.push(logProbOf(row(j === 0 ? 0 : path[j - 1] + 1), t));
    }
    const reason = tracker.add(cut(decoder.push(fresh)));
    // A pass with nothing drafted is a plain-decoding step: it keeps the estimate honest.
    if (tree.tokens.length === 0) passTime.observe(past, performance.now() - tv, 0.2);
    if (reason) {
      stopReason = reason;
      break;
    }
    if (endedBy !== undefined) {
      stopReason = tokenizer.special.eos.has(endedBy) ? 'eos' : 'control';
      break;
    }
  }
  if (stopReason !== 'stop' && stopReason !== 'rule') {
    const reason = tracker.add(cut(decoder.flush()), true);
    if (reason) stopReason = reason;
  }
  const tEnd = performance.now();
  const healedChars = (req.heal ?? '').length - skip;
  const outTokens = stopReason === 'stop' || stopReason === 'rule' ? tokensCovering(tokenizer, generated, healedChars + tracker.text.length) : generated;
  return {
    text: tracker.text,
    tokens: outTokens,
    ...(healedChars > 0 ? { healed: (req.heal ?? '').slice(0, healedChars) } : {}),
    stopReason,
    stats: stats.finish(tEnd - tDecode, tEnd - t0),
    ...(req.logprobs ? { tokenLogprobs: logprobs.slice(0, outTokens.length) } : {}),
  };
}

/**
 * The pass's draft as a tree (a chain when the drafter gave no per-position candidates or trees
 * are off): best-first under the budget, lookup branches grafted, then cut to the node count the
 * policy picks for the time already spent drafting (`timing`; drafters that report confidence),
 * and to what the model's positions allow.
 */
export function draftTree(draft: Draft, budget: number, room: number, policy: DraftPolicy, timing?: { draftMs: number; past: number }): DraftTree {
  const calibrate = (c: number) => policy.calibration.p(c);
  const positions = budget > 0 ? draft.positions : undefined;
  let tree = positions ? buildTree(positions, budget, calibrate) : chainTree(draft.tokens, draft.probs, draft.confidence, calibrate);
  if (budget > 0) for (const b of draft.branches ?? []) tree = graftBranch(tree, b.tokens, b.gains);
  // With trees on, the budget bounds the drafter's own nodes; grafted lookup nodes come on top.
  const grafted = tree.rank.reduce((m, r) => m + (r < 0 ? 1 : 0), 0);
  let n = Math.min(room, budget > 0 ? budget + grafted : tree.tokens.length);
  // Drafts with estimated chances (the drafter's confidence, lookup branches' learned rates) send
  // the node count the cost model picks; a plain n-gram chain has none and is sent whole.
  if (timing && (draft.confidence || positions || grafted > 0)) n = policy.nodeCount(tree.gains, n, timing.draftMs, timing.past);
  return truncateTree(tree, n);
}

/** A copy of `row` with every id outside `allowed` at -Infinity. */
function restrict(row: Float32Array, allowed: Set<number>): Float32Array {
  const out = new Float32Array(row.length).fill(-Infinity);
  for (const id of allowed) if (id < row.length) out[id] = row[id];
  return out;
}

/** The shortest prefix of `tokens` whose text covers `length` characters. */
function tokensCovering(tokenizer: DeerTokenizer, tokens: number[], length: number): number[] {
  let n = tokens.length;
  while (n > 0 && tokenizer.decode(tokens.slice(0, n - 1)).length >= length) n--;
  return tokens.slice(0, n);
}
