// The engine's public contract: what the CLI, the benchmark, the worker and the extension use.
// No 'vscode' import anywhere under src/engine. Everything here but `stopAt` is plain data, so
// the worker sends requests, results and stats across the process boundary as they are.
import type { StopSpec } from './stopRule';
export type { CompletionMode, StopSpec } from './stopRule';

import { ENGINE_DEFAULTS } from './defaults';
export { availableDrafter, DRAFTER_FALLBACK, ENGINE_DEFAULTS, MALLOC_ENV } from './defaults';

export type DrafterName = 'none' | 'ngram' | 'ar' | 'deer';
export const DRAFTER_NAMES: readonly DrafterName[] = ['none', 'ngram', 'ar', 'deer'];
/** Draft-tree nodes per pass for deer when neither the request nor the model's deer.json says (ENGINE_DEFAULTS.treeBudget). */
export const DEFAULT_TREE_BUDGET = ENGINE_DEFAULTS.treeBudget;
export const DEFAULT_LOOKUP_TREE_BRANCHES = ENGINE_DEFAULTS.lookupTreeBranches;

export interface EngineOptions {
  /** Model folder (HF layout + optional deer.json). */
  modelDir: string;
  /** onnxruntime intra-op threads; default: 2 for a verifier under 20M parameters, else 4, at most the cores (ENGINE_DEFAULTS.threads). */
  threads?: number;
  /** Let onnxruntime threads spin while waiting (faster passes, more CPU). Default: when the threads leave a core free. */
  spinning?: boolean;
}

/** A CompletionRequest with a bad field (NaN tokens, a negative block, topP 0...): `field` names it. */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
  constructor(
    readonly field: string,
    problem: string,
  ) {
    super(`invalid request: ${field} ${problem}`);
  }
}

export interface CompletionRequest {
  /** Text before the cursor. */
  prefix: string;
  /** Text after the cursor; when non-empty a fill-in-the-middle prompt is built. */
  suffix?: string;
  maxNewTokens: number;
  drafter?: DrafterName;
  /** Drafted block size for drafters that take one (deer, ar, ngram). */
  blockSize?: number;
  /**
   * Trim each drafted block to the length with the best expected tokens per millisecond, from the
   * drafter's confidence and the measured verifier pass times (deer, ar). Lossless. Default true,
   * except when sampling with a seed (the length then depends on timing, so the seed would not
   * reproduce the output).
   */
  adaptiveBlock?: boolean;
  /**
   * deer only: each pass also try prompt lookup (the ngram drafter) and send whichever draft
   * promises more accepted tokens. Sampled requests use it in draft trees only (see treeBudget);
   * lossless either way. Default false.
   */
  lookup?: boolean;
  /**
   * deer: most of the drafter's draft-tree nodes per verifier pass. Each pass then verifies a tree
   * of the drafter's likeliest continuations (and, with lookup, the prompt-lookup continuation as
   * one more branch, its nodes on top of the budget, as many as the cost model finds worth
   * verifying) instead of one chain; lossless. Needs a verifier with tree_mask (ModelInfo.treeAttention),
   * else chains. 0 = chains. Default: the model's (ModelInfo.treeBudget).
   */
  treeBudget?: number;
  /** 0 (default) = greedy. */
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Stop when the generated text contains one of these; the stop string is not returned. */
  stop?: string[];
  /** Where the completion must end (one line, or a block), as data: it crosses processes. Applied with stopAt if both are given. */
  stopSpec?: StopSpec;
  /**
   * Caller's stop rule, asked after every accepted chunk with all text generated so far.
   * Return an index to cut the text there and stop, or null to go on.
   */
  stopAt?: (generated: string) => number | null;
  /**
   * Stop when the output repeats itself (the same lines three times in a row, or a few
   * characters over and over), keeping one copy; stopReason 'repeat'. Streamed text then comes
   * line by line. Default true.
   */
  stopOnRepeat?: boolean;
  /** Also return each token's log-probability under the verifier (CompletionResult.tokenLogprobs). Default false. */
  logprobs?: boolean;
  /**
   * Token healing: the prompt leaves out the prefix's trailing whitespace or half-typed word, and
   * the first generated tokens must spell it again (so `return ` continues as the model would
   * after ` return`, not after a lone space it rarely saw). Every drafter decodes those tokens
   * plainly, so outputs stay identical across drafters. Default true (models whose tokenizer
   * cannot spell every character alone never heal).
   */
  heal?: boolean;
}

export interface RunStats {
  drafter: DrafterName;
  promptTokens: number;
  /** Prompt tokens whose KV cache was reused from the previous request. */
  reusedTokens: number;
  newTokens: number;
  /** Verifier passes after prefill. */
  passes: number;
  /** acceptedHistogram[n] = passes that accepted n drafted tokens (bonus token not counted). */
  acceptedHistogram: number[];
  /** New tokens per verifier pass (the bonus token counted): 1.0 for plain decoding. */
  meanAccepted: number;
  /** Drafted tokens sent to the verifier, all passes (every node of a draft tree counted). */
  draftedTokens?: number;
  /** Passes verified draft trees (CompletionRequest.trees and a verifier with tree_mask), not chains. */
  trees?: boolean;
  prefillMs: number;
  draftMs: number;
  verifyMs: number;
  /** Decoding time, prefill excluded. */
  decodeMs: number;
  totalMs: number;
  /** newTokens / decode seconds. */
  tokensPerSecond: number;
  /** Estimated speedup over plain decoding on this machine (calibrated single-token pass time). */
  estimatedSpeedup: number;
}

/** The stats of a run that did nothing (an aborted or refused request): zeros. */
export function emptyStats(drafter: DrafterName): RunStats {
  return {
    drafter, promptTokens: 0, reusedTokens: 0, newTokens: 0, passes: 0, acceptedHistogram: [], meanAccepted: 0,
    draftedTokens: 0, trees: false, prefillMs: 0, draftMs: 0, verifyMs: 0, decodeMs: 0, totalMs: 0, tokensPerSecond: 0, estimatedSpeedup: 0,
  };
}

/** The result of a request aborted before it produced anything. */
export function abortedResult(drafter: DrafterName = 'none'): CompletionResult {
  return { text: '', tokens: [], stopReason: 'aborted', stats: emptyStats(drafter) };
}

/**
 * 'eos': the model wrote end-of-text; 'control': another control token (a FIM marker, the mask, an
 * id outside the vocabulary). Neither is ever part of the text.
 */
export type StopReason = 'eos' | 'control' | 'max_tokens' | 'stop' | 'rule' | 'repeat' | 'aborted';

export interface CompletionResult {
  text: string;
  /**
   * The generated ids: their text is `healed` followed by `text`, except where a stop string or
   * rule (stopReason 'stop', 'rule', 'repeat') cut inside the last one; then the shortest run
   * whose text starts with that.
   */
  tokens: number[];
  /** The end of the prefix that the first tokens spelled again (token healing; CompletionRequest.heal), when any. */
  healed?: string;
  stopReason: StopReason;
  stats: RunStats;
  /** Said once, on the request where it happened: e.g. a drafter failed and the model now uses another. */
  warnings?: string[];
  /** With request.logprobs: ln p(token) under the verifier's distribution (temperature 1), one per entry of `tokens`. */
  tokenLogprobs?: number[];
}

export interface CompletionCallbacks {
  signal?: AbortSignal;
  /** Called with each accepted chunk of text (already stable UTF-8, stop rules applied). */
  onChunk?: (text: string) => void;
}

export interface ModelInfo {
  modelDir: string;
  name: string;
  vocabSize: number;
  drafters: DrafterName[];
  defaultBlockSize: number;
  fim: boolean;
  /** The drafter used when a request names none: 'deer' when the folder has one, else 'ngram'. */
  defaultDrafter?: DrafterName;
  /** Longest sequence (prompt + completion) the verifier takes; longer prompts are trimmed. */
  maxPositions?: number;
  /** The verifier takes tree_mask, so deer can verify draft trees (else chains only). */
  treeAttention?: boolean;
  /** Draft-tree nodes per pass when a deer request does not say: deer.json's drafters.deer.tree_budget, else DEFAULT_TREE_BUDGET. */
  treeBudget?: number;
  /** Problems worth showing that do not stop the model from loading (e.g. a quantization that is not exact). */
  warnings?: string[];
  /** onnxruntime intra-op threads per session, and whether they spin between kernels. */
  threads?: number;
  spinning?: boolean;
}
