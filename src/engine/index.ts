// The engine: a verifier with a KV cache, sped up by drafters without changing its output.
// Plain Node (no 'vscode'), shared by the CLI, the tests, the benchmark and the extension.
import { readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import {
  abortedResult,
  InvalidRequestError,
  type CompletionCallbacks,
  type CompletionRequest,
  type CompletionResult,
  type DrafterName,
  type EngineOptions,
  type ModelInfo,
} from './api';
import { argmax } from './acceptance';
import { DRAFTER_FALLBACK, ENGINE_DEFAULTS } from './defaults';
import { AutoregressiveDrafter } from './drafters/autoregressive';
import { DiffusionDrafter } from './drafters/diffusion';
import { LookupHybridDrafter } from './drafters/hybrid';
import { NgramDrafter } from './drafters/ngram';
import { NoDrafter } from './drafters/none';
import type { Drafter } from './drafters/types';
import { ModelSpec, readModelFolder } from './modelFolder';
import { repetitionCut, repetitionHoldback } from './repetition';
import { PromptWindow } from './prompt';
import { runLoop } from './speculative';
import { makeStopRule, stopSpecProblem } from './stopRule';
import { DraftPolicy } from './draftPolicy';
import { PassTimeModel } from './stats';
import { DeerTokenizer } from './tokenizer';
import { DecoderSession } from './verifier';

export * from './api';
export { ModelFolderError } from './modelFolder';

const { maxBlockSize: MAX_BLOCK, maxTreeBudget: MAX_TREE } = ENGINE_DEFAULTS;

/** Throws InvalidRequestError naming the first bad field. */
export function checkRequest(req: CompletionRequest): void {
  const bad = (field: string, problem: string): never => {
    throw new InvalidRequestError(field, problem);
  };
  const show = (v: unknown): string => (typeof v === 'number' ? String(v) : JSON.stringify(v));
  if (typeof req.prefix !== 'string') bad('prefix', `must be a string, got ${show(req.prefix)}`);
  if (req.suffix !== undefined && typeof req.suffix !== 'string') bad('suffix', `must be a string, got ${show(req.suffix)}`);
  if (typeof req.maxNewTokens !== 'number' || !Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 0) {
    bad('maxNewTokens', `must be a whole number >= 0, got ${show(req.maxNewTokens)}`);
  }
  const { blockSize, temperature, topP, seed } = req;
  if (blockSize !== undefined && (!Number.isInteger(blockSize) || blockSize < 0 || blockSize > MAX_BLOCK)) {
    bad('blockSize', `must be a whole number from 0 to ${MAX_BLOCK}, got ${show(blockSize)}`);
  }
  if (temperature !== undefined && (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0)) {
    bad('temperature', `must be a number >= 0 (0 = greedy), got ${show(temperature)}`);
  }
  if (topP !== undefined && (typeof topP !== 'number' || !(topP > 0 && topP <= 1))) {
    bad('topP', `must be in (0, 1] (a nucleus of nothing samples nothing), got ${show(topP)}`);
  }
  if (seed !== undefined && !Number.isInteger(seed)) bad('seed', `must be a whole number, got ${show(seed)}`);
  const { treeBudget } = req;
  if (treeBudget !== undefined && (!Number.isInteger(treeBudget) || treeBudget < 0 || treeBudget > MAX_TREE)) {
    bad('treeBudget', `must be a whole number from 0 (chains) to ${MAX_TREE}, got ${show(treeBudget)}`);
  }
  if (req.stopSpec !== undefined) {
    const problem = stopSpecProblem(req.stopSpec);
    if (problem) bad('stopSpec', problem);
  }
  if (req.stop !== undefined && (!Array.isArray(req.stop) || req.stop.some((s) => typeof s !== 'string'))) {
    bad('stop', `must be a list of strings, got ${show(req.stop)}`);
  }
}

/**
 * The end of the prefix that token healing leaves out of the prompt: trailing whitespace (with
 * the line break before an indent: `\n    ` is one token in a BPE vocabulary, `\n` + `    `
 * is not what the model saw in training), else a word being typed with its leading blank
 * (` retu`), which BPE would have merged with what comes next. '' when there is nothing to heal.
 */
export function healingText(prefix: string): string {
  const m = /(?:\s+|[ \t]?[A-Za-z0-9_$]{1,32})$/.exec(prefix);
  return m ? m[0] : '';
}

/** A drafter's own failure (not the verifier's): the request is retried with its fallback. */
class DrafterFailedError extends Error {
  override name = 'DrafterFailedError';
  constructor(readonly drafter: DrafterName, readonly error: unknown) {
    super(`the ${drafter} drafter failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The same drafter, with its failures marked as DrafterFailedError. */
export function guarded(name: DrafterName, d: Drafter): Drafter {
  const wrap = async <T>(f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      throw new DrafterFailedError(name, e);
    }
  };
  return {
    name: d.name,
    begin: (ctx) => wrap(() => d.begin(ctx)),
    draft: (ctx, k) => wrap(() => d.draft(ctx, k)),
    accept: (n, added, timing) => {
      try {
        d.accept(n, added, timing);
      } catch (e) {
        throw new DrafterFailedError(name, e);
      }
    },
    dispose: () => d.dispose(),
  };
}

/** The request with its stopSpec folded into stopAt (whichever cuts first), after checking it. */
function withStopRule(req: CompletionRequest): CompletionRequest {
  if (req.stopSpec === undefined) return req;
  checkRequest(req);
  const specRule = makeStopRule(req.stopSpec);
  const own = req.stopAt;
  const stopAt = own
    ? (generated: string): number | null => {
        const a = own(generated);
        const b = specRule(generated);
        return a === null ? b : b === null ? a : Math.min(a, b);
      }
    : specRule;
  return { ...req, stopSpec: undefined, stopAt };
}

export interface EngineLoadOptions extends EngineOptions {
  /** Time single-token verifier passes at load so estimatedSpeedup is meaningful (default true). */
  calibrate?: boolean;
  /** Tokens per prefill pass (default ENGINE_DEFAULTS.prefillChunk). */
  prefillChunk?: number;
  /** Have onnxruntime write outputs into pre-allocated buffers (default false: measured slower; kept to measure). */
  ioBinding?: boolean;
  /** Different prompt-lookup continuations grafted onto a deer+lookup draft tree (default ENGINE_DEFAULTS.lookupTreeBranches). */
  lookupTreeBranches?: number;
}

/**
 * Per-tensor dynamic activation quantization (onnxruntime's quantize_dynamic: DynamicQuantizeLinear
 * feeding MatMulInteger, or the two fused as DynamicQuantizeMatMul, which this project's export
 * uses for draft models only) gives a position logits that depend on the other tokens of the same
 * pass, so speculative output can differ from plain decoding. Such a verifier still loads, with
 * this warning; weight-only int8 (training/export.py) is exact.
 */
function perTensorQuantWarning(file: string): string[] {
  if (statSync(file).size >= 1 << 30) return [];
  const bytes = readFileSync(file);
  const unfused = bytes.includes('DynamicQuantizeLinear') && bytes.includes('MatMulInteger');
  if (!unfused && !bytes.includes('DynamicQuantizeMatMul')) return [];
  return [
    `${file} quantizes activations per tensor (${unfused ? 'DynamicQuantizeLinear -> MatMulInteger' : 'DynamicQuantizeMatMul'}): a position's logits depend on ` +
      'the other tokens in the same pass, so drafted output may differ from plain decoding. Re-export the verifier with ' +
      'weight-only int8 (python -m training.export ... --quantize) or in fp32.',
  ];
}

/**
 * A verifier that computes in int8 (deer.json min_tokens_per_pass, training/export.py
 * int8_compute_verifier) is exact only where this CPU's kernels compute a position the same way
 * whatever else is in the pass. Checked at load, bit for bit: a 4-token pass against two 2-token
 * passes, and (with tree_mask) a tree's nodes against that chain.
 */
async function rowIndependenceWarning(verifier: DecoderSession, file: string): Promise<string[]> {
  const base = [1, 2].map((i) => i % verifier.vocabSize);
  const chain = [11, 12, 13, 14].map((i) => i % verifier.vocabSize);
  const width = verifier.vocabSize;
  await verifier.prefill(base);
  const whole = (await verifier.forward(chain))!.slice();
  verifier.rollback(base.length);
  const split = new Float32Array(whole.length);
  split.set((await verifier.forward(chain.slice(0, 2)))!);
  split.set((await verifier.forward(chain.slice(2)))!, 2 * width);
  let same = split.every((x, i) => x === whole[i]);
  if (same && verifier.treeAttention) {
    verifier.rollback(base.length);
    const tree = (await verifier.forward([chain[0], 7 % width, chain[1], chain[2]], true, [-1, -1, 0, 2]))!;
    same = [0, 2, 3].every((node, i) => tree.subarray(node * width, (node + 1) * width).every((x, j) => x === whole[i * width + j]));
  }
  verifier.clear();
  if (same) return [];
  return [
    `${file} computes in int8, and on this CPU a position's logits depend on the other tokens in the same pass, so drafted output ` +
      'may differ from plain decoding. Re-export the verifier with fp32 compute (python -m training.export ... --quantize, without --int8-compute).',
  ];
}

/** Intra-op threads for this model's sessions on a CPU with `cores` cores (ENGINE_DEFAULTS.threads). */
export function defaultThreads(spec: ModelSpec, cores = cpus().length): number {
  const { smallVerifierParams, small, large } = ENGINE_DEFAULTS.threads;
  const params = spec.vocabSize * spec.hiddenSize + spec.verifier.numLayers * 12 * spec.hiddenSize ** 2;
  return Math.max(1, Math.min(params < smallVerifierParams ? small : large, cores));
}

/**
 * Spinning threads wait for the next kernel by busy-looping: faster passes when a core is idle, but
 * when they hold every core they also take the time the rest of the process (drafting, acceptance,
 * the worker's messages) needs between passes.
 */
export function defaultSpinning(threads: number, cores = cpus().length): boolean {
  return threads < cores;
}

/** Policies are kept per drafter, deer with prompt lookup apart from plain deer. */
type PolicyName = DrafterName | 'deer+lookup';

export class Engine {
  readonly info: ModelInfo;
  /** Single-token pass time model (ms = a + b * past), from calibration and observed passes. */
  readonly passTime = new PassTimeModel();
  private readonly drafters = new Map<DrafterName, Promise<Drafter>>();
  /** Cuts long prompts to the budget, at line starts that stay put while the user types. */
  private readonly promptWindow: PromptWindow;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  /** Whether this tokenizer can re-spell any typed text (token healing); its table is built at load, not on the first request. */
  private readonly canHeal: boolean;

  private constructor(
    private readonly spec: ModelSpec,
    private readonly tokenizer: DeerTokenizer,
    private readonly verifier: DecoderSession,
    private readonly opts: Required<Pick<EngineLoadOptions, 'threads' | 'spinning' | 'ioBinding' | 'lookupTreeBranches'>>,
  ) {
    this.promptWindow = new PromptWindow(tokenizer);
    this.canHeal = tokenizer.canHeal;
    const drafters: DrafterName[] = ['none', 'ngram'];
    if (spec.ar) drafters.push('ar');
    if (spec.deer) drafters.push('deer');
    this.info = {
      modelDir: spec.dir,
      name: spec.name,
      vocabSize: spec.vocabSize,
      drafters,
      defaultBlockSize: spec.deer?.blockSize ?? ENGINE_DEFAULTS.blockSize.ngram,
      fim: tokenizer.fim,
      defaultDrafter: spec.deer ? 'deer' : 'ngram',
      maxPositions: spec.maxPositions,
      treeAttention: verifier.treeAttention,
      treeBudget: spec.deer?.treeBudget ?? ENGINE_DEFAULTS.treeBudget,
      warnings: perTensorQuantWarning(spec.verifier.file),
      threads: opts.threads,
      spinning: opts.spinning,
    };
  }

  static async load(options: EngineLoadOptions): Promise<Engine> {
    const spec = readModelFolder(options.modelDir);
    const tokenizer = new DeerTokenizer(spec);
    const threads = options.threads ?? defaultThreads(spec);
    const spinning = options.spinning ?? defaultSpinning(threads);
    const ioBinding = options.ioBinding ?? false;
    const wantHidden = spec.deer?.conditioning.includes('hidden') ?? false;
    const verifier = await DecoderSession.create(spec.verifier.file, spec.verifier, {
      threads,
      spinning,
      vocabSize: spec.vocabSize,
      maxPositions: spec.maxPositions,
      prefillChunk: options.prefillChunk ?? ENGINE_DEFAULTS.prefillChunk,
      hiddenOutput: wantHidden ? spec.verifier.hiddenStates!.output : undefined,
      hiddenSize: wantHidden ? spec.verifier.hiddenStates!.size : undefined,
      bind: ioBinding,
      treeAttention: spec.verifier.treeAttention,
    });
    const lookupTreeBranches = options.lookupTreeBranches ?? ENGINE_DEFAULTS.lookupTreeBranches;
    if (!Number.isInteger(lookupTreeBranches) || lookupTreeBranches < 1) throw new Error(`lookupTreeBranches must be a whole number of at least 1, not ${lookupTreeBranches}`);
    const engine = new Engine(spec, tokenizer, verifier, { threads, spinning, ioBinding, lookupTreeBranches });
    try {
      // The DEER drafter (the default one) is loaded and tried now: one made for another verifier is refused here.
      if (spec.deer) await engine.warm('deer');
      if (wantHidden) {
        await verifier.forward([engine.firstEos()], false);
        verifier.clear();
      }
      if ((spec.verifier.minTokensPerPass ?? 1) > 1) engine.info.warnings?.push(...(await rowIndependenceWarning(verifier, spec.verifier.file)));
      if (options.calibrate ?? true) await engine.calibrate();
    } catch (e) {
      await engine.dispose();
      throw e;
    }
    return engine;
  }

  /** Times single-token passes at two cached lengths and fits ms = a + b * past. */
  private async calibrate(): Promise<void> {
    const filler = this.tokenizer.encode('function f(x) {\n  return x + 1;\n}\n');
    const want = Math.min(256, this.spec.maxPositions - 8);
    const ids: number[] = [];
    while (ids.length < want) ids.push(...filler);
    ids.length = want;
    const samples: { past: number; ms: number }[] = [];
    for (const past of [16, want - 4]) {
      await this.verifier.prefill(ids.slice(0, past));
      const times: number[] = [];
      for (let i = 0; i < 9; i++) {
        const t0 = performance.now();
        const logits = await this.verifier.forward([ids[past]], true);
        argmax(logits!);
        this.verifier.rollback(past);
        if (i >= 2) times.push(performance.now() - t0); // the first passes warm up
      }
      times.sort((a, b) => a - b);
      samples.push({ past, ms: times[Math.floor(times.length / 2)] });
    }
    this.passTime.fit(samples);
    // One block-sized pass sets the starting cost of multi-token passes.
    const q = Math.min(this.info.defaultBlockSize + 1, 32);
    const mid = Math.floor(want / 2);
    await this.verifier.prefill(ids.slice(0, mid));
    const times: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await this.verifier.forward(ids.slice(mid, mid + q), true);
      this.verifier.rollback(mid);
      if (i >= 1) times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const ratio = times[Math.floor(times.length / 2)] / this.passTime.predict(mid);
    this.passTime.slope = Math.max(0, (ratio - 1) / (q - 1));
    this.verifier.clear();
  }

  /** onnxruntime intra-op threads in use. */
  get threads(): number {
    return this.opts.threads;
  }

  /** Whether those threads spin between kernels. */
  get spinning(): boolean {
    return this.opts.spinning;
  }

  /** Tokens of `text` in this model's tokenizer. */
  countTokens(text: string): number {
    return this.tokenizer.encode(text).length;
  }

  /** Forgets the verifier's cached tokens (the next request prefills from scratch). */
  clearCache(): void {
    this.verifier.clear();
    this.promptWindow.reset();
  }

  /**
   * Completes at the cursor. Requests run one at a time, in call order (the one queue: the worker
   * and the client only forward). An aborted signal resolves with stopReason 'aborted' and the
   * text so far, at once when the request is still waiting for its turn (it then never runs);
   * the cache stays valid.
   */
  complete(req: CompletionRequest, cb: CompletionCallbacks = {}): Promise<CompletionResult> {
    const signal = cb.signal;
    let started = false;
    const run = this.queue.then(() => {
      started = true;
      return signal?.aborted ? abortedResult(req.drafter) : this.completeNow(withStopRule(req), cb);
    });
    this.queue = run.catch(() => undefined);
    if (!signal) return run;
    return new Promise<CompletionResult>((resolve, reject) => {
      const onAbort = (): void => {
        if (!started) resolve(abortedResult(req.drafter));
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      run.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
    });
  }

  /** Drafters that failed at run time on this model, and why; their requests go to DRAFTER_FALLBACK. */
  private readonly failedDrafters = new Map<DrafterName, string>();

  private async completeNow(req: CompletionRequest, cb: CompletionCallbacks): Promise<CompletionResult> {
    if (this.disposed) throw new Error('Engine is disposed');
    checkRequest(req);
    let name = req.drafter ?? this.info.defaultDrafter ?? 'ngram';
    if (!this.info.drafters.includes(name)) {
      const why = name === 'deer' || name === 'ar' ? `: ${this.spec.hasManifest ? 'its deer.json declares' : 'the folder has no deer.json, so'} no drafters.${name}` : '';
      const hint = name === 'deer' ? '; a DEER drafter is trained for a verifier with training/ (docs/bring-your-own-model.md)' : '';
      throw new Error(`drafter "${name}" is not available for ${this.spec.name}${why} (available: ${this.info.drafters.join(', ')})${hint}`);
    }
    while (this.failedDrafters.has(name)) name = DRAFTER_FALLBACK[name]!;
    let emitted = '';
    const onChunk = cb.onChunk;
    try {
      return await this.run({ ...req, drafter: name }, { ...cb, onChunk: (t) => ((emitted += t), onChunk?.(t)) });
    } catch (e) {
      const next = DRAFTER_FALLBACK[name];
      if (!(e instanceof DrafterFailedError) || next === undefined) throw e instanceof DrafterFailedError ? e.error : e;
      const warning = `${e.message}; ${this.spec.name} uses ${next} from now on`;
      this.failedDrafters.set(name, warning);
      this.info.warnings?.push(warning);
      // Go on from what was already streamed, with the fallback drafter.
      const rule = req.stopAt;
      const rest = await this.completeNow(
        {
          ...req,
          drafter: next,
          prefix: req.prefix + emitted,
          maxNewTokens: Math.max(0, req.maxNewTokens - this.tokenizer.encode(emitted).length),
          stopAt: rule
            ? (generated) => {
                const cut = rule(emitted + generated);
                return cut === null ? null : Math.max(0, cut - emitted.length);
              }
            : undefined,
        },
        cb,
      );
      return { ...rest, text: emitted + rest.text, warnings: [warning, ...(rest.warnings ?? [])] };
    }
  }

  private async run(req: CompletionRequest & { drafter: DrafterName }, cb: CompletionCallbacks): Promise<CompletionResult> {
    const name = req.drafter;
    const temperature = req.temperature ?? ENGINE_DEFAULTS.temperature;
    const treeBudget = name === 'deer' && this.info.treeAttention ? (req.treeBudget ?? this.info.treeBudget ?? ENGINE_DEFAULTS.treeBudget) : 0;
    // Sampled requests use prompt lookup in draft trees only (lossless either way: acceptance draws the
    // verifier's own token at each node). As a chain under sampling it measured no faster than deer alone
    // (docs/engine.md, session 14); in trees, 1.11-1.13x against 0.94-0.95x.
    const lookup = name === 'deer' && req.lookup === true && (!(temperature > 0) || treeBudget > 0);
    let drafter: Drafter;
    try {
      drafter = guarded(name, lookup ? await this.hybrid() : await this.drafter(name));
    } catch (e) {
      throw new DrafterFailedError(name, e);
    }
    const blockSize = name === 'none' ? 0 : (req.blockSize ?? (name === 'deer' ? this.spec.deer!.blockSize : ENGINE_DEFAULTS.blockSize[name]));
    const suffix = req.suffix ?? '';
    // The prompt budget must not depend on the drafter, or drafters would see different prompts.
    const maxPos = this.spec.maxPositions;
    let maxNew = Math.max(0, Math.floor(req.maxNewTokens));
    const heal = (req.heal ?? ENGINE_DEFAULTS.tokenHealing) && this.canHeal ? healingText(req.prefix) : '';
    let prompt = this.promptWindow.build(req.prefix.slice(0, req.prefix.length - heal.length), suffix, Math.floor(maxPos * ENGINE_DEFAULTS.promptShare));
    if (prompt.length === 0) prompt = [this.firstEos()];
    maxNew = Math.min(maxNew, maxPos - prompt.length);
    const suffixIds = suffix.length > 0 ? this.tokenizer.encode(suffix.slice(0, 512)) : [];
    // The caller's rule and the repetition guard: whichever cuts first.
    const guard = req.stopOnRepeat ?? true;
    const rule = req.stopAt;
    let repeated = false;
    const stopAt = !guard
      ? rule
      : (generated: string): number | null => {
          const ruled = rule?.(generated) ?? null;
          const loop = repetitionCut(generated);
          repeated = loop !== null && (ruled === null || loop < ruled);
          return repeated ? loop : ruled;
        };
    const result = await runLoop(
      { verifier: this.verifier, drafter, tokenizer: this.tokenizer },
      {
        prompt,
        suffixIds,
        maxNewTokens: maxNew,
        blockSize,
        temperature,
        topP: req.topP ?? ENGINE_DEFAULTS.topP,
        seed: req.seed ?? Math.floor(Math.random() * 2 ** 31),
        stop: req.stop ?? [],
        stopAt,
        holdback: guard ? repetitionHoldback : undefined,
        logprobs: req.logprobs,
        // Draft lengths chosen from measured times would make seeded sampling irreproducible.
        adaptive: req.adaptiveBlock ?? !(temperature > 0 && req.seed !== undefined),
        treeBudget,
        heal,
      },
      this.policy(lookup ? 'deer+lookup' : name),
      cb,
    );
    if (result.stopReason === 'rule' && repeated) result.stopReason = 'repeat';
    return result;
  }

  private hybridDrafter?: LookupHybridDrafter;

  /** DEER with prompt lookup (CompletionRequest.lookup). */
  private async hybrid(): Promise<LookupHybridDrafter> {
    const deer = (await this.drafter('deer')) as DiffusionDrafter;
    this.hybridDrafter ??= new LookupHybridDrafter(deer, this.policy('deer+lookup'), this.opts.lookupTreeBranches);
    return this.hybridDrafter;
  }

  private readonly policies = new Map<PolicyName, DraftPolicy>();

  /**
   * The draft-length policy of a drafter, kept over the engine's life. deer and ar size their
   * blocks (a pass of their own costs time); deer+lookup shares deer's calibration.
   */
  private policy(name: PolicyName): DraftPolicy {
    let p = this.policies.get(name);
    if (!p) {
      const calibration = name === 'deer+lookup' ? this.policy('deer').calibration : undefined;
      p = new DraftPolicy(this.passTime, { sizeBeforeDraft: name === 'deer' || name === 'ar', calibration });
      this.policies.set(name, p);
    }
    return p;
  }

  private firstEos(): number {
    const [eos] = this.tokenizer.special.eos;
    if (eos === undefined) throw new Error('empty prompt and the model has no EOS token to start from');
    return eos;
  }

  private drafter(name: DrafterName): Promise<Drafter> {
    let d = this.drafters.get(name);
    if (!d) {
      d = this.createDrafter(name);
      this.drafters.set(name, d);
      d.catch(() => this.drafters.delete(name));
    }
    return d;
  }

  private async createDrafter(name: DrafterName): Promise<Drafter> {
    const { threads, spinning, ioBinding } = this.opts;
    switch (name) {
      case 'none':
        return new NoDrafter();
      case 'ngram':
        return new NgramDrafter();
      case 'ar': {
        const ar = this.spec.ar!;
        const session = await DecoderSession.create(ar.file, ar, {
          threads,
          spinning,
          vocabSize: this.spec.vocabSize,
          maxPositions: this.spec.maxPositions,
          bind: ioBinding,
          shapeSource: 'deer.json drafters.ar',
        });
        return new AutoregressiveDrafter(session);
      }
      case 'deer': {
        const deer = this.spec.deer!;
        return DiffusionDrafter.create(deer, {
          threads,
          spinning,
          maskId: this.tokenizer.special.mask!,
          eosId: this.firstEos(),
          vocabSize: this.spec.vocabSize,
          hiddenSize: this.spec.verifier.hiddenStates?.size ?? 0,
        });
      }
    }
  }

  /** Loads a drafter's session now rather than on its first request. */
  async warm(name: DrafterName): Promise<void> {
    await this.drafter(name);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue;
    for (const d of this.drafters.values()) await (await d.catch(() => undefined))?.dispose();
    await this.verifier.dispose();
  }
}
