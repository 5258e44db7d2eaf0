// Every default and limit of the engine, in one place. Plain data (no model, no 'vscode'): the
// worker, the CLI and the editor read these too.
import type { DrafterName } from './api';

export const ENGINE_DEFAULTS = Object.freeze({
  /** Drafted block per drafter when neither the request nor deer.json says. */
  blockSize: Object.freeze({ none: 0, ngram: 10, ar: 5, deer: 16 } satisfies Record<DrafterName, number>),
  /** Most tokens drafted per pass that a request may ask for. */
  maxBlockSize: 256,
  /** Draft-tree nodes per pass for deer when a request does not say (the pass-time model may send fewer). */
  treeBudget: 32,
  /** Most draft-tree nodes in one verifier pass. */
  maxTreeBudget: 256,
  /** Different prompt-lookup continuations grafted onto one draft tree (deer+lookup with trees; chains take one). */
  lookupTreeBranches: 1,
  /** Likeliest tokens asked of the drafter per block position when building draft trees. */
  treeCandidates: 8,
  /**
   * Share of the model's positions a prompt may take (the rest is room to generate). Fixed, so a
   * prefetch (no new tokens), an inline request and Generate cut a long prompt the same way and
   * share the KV cache.
   */
  promptShare: 0.75,
  /** Tokens per prefill pass. */
  prefillChunk: 128,
  /** Token healing of the prefix's last token (CompletionRequest.heal). */
  tokenHealing: true,
  /**
   * onnxruntime intra-op threads per session when the caller does not say: `small` for a verifier
   * under `smallVerifierParams` parameters, else up to `large`; never more than the CPU's cores.
   * Threads spin between kernels only when a core is left over for the rest of the process
   * (defaultSpinning). Measured in docs/engine.md, "Threads".
   */
  threads: Object.freeze({ smallVerifierParams: 20e6, small: 2, large: 4 }),
  /** Sampling: 0 = greedy; top-p 1 = the whole distribution. */
  temperature: 0,
  topP: 1,
});

/**
 * Where a drafter's requests go when it is not in the model folder (the editor asks for its
 * setting) or failed at run time (the engine, once per model): the next one here that the model
 * has. 'none' always works.
 */
export const DRAFTER_FALLBACK: Readonly<Record<DrafterName, DrafterName | undefined>> = Object.freeze({
  deer: 'ngram',
  ar: 'ngram',
  ngram: 'none',
  none: undefined,
});

/** `wanted` if the model has it, else the first of its fallbacks that the model has. */
export function availableDrafter(wanted: DrafterName, available: readonly DrafterName[]): DrafterName {
  let name: DrafterName | undefined = wanted;
  while (name !== undefined && !available.includes(name)) name = DRAFTER_FALLBACK[name];
  return name ?? 'none';
}

/**
 * glibc malloc settings for a process that runs the engine: glibc hands big blocks straight back
 * to the kernel and maps them again on the next pass; raising these thresholds keeps the per-pass
 * buffers in the heap (docs/engine.md, "Per-pass floor"). The CLI re-executes itself with them, the
 * extension starts its inference process with them.
 */
export const MALLOC_ENV: Readonly<Record<string, string>> = Object.freeze({
  MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20),
  MALLOC_TRIM_THRESHOLD_: String(256 * 2 ** 20),
});
