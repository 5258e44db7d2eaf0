// The DEER drafter: one ONNX pass fills a block of k masked positions after the verified sequence,
// conditioned (as deer.json declares) on the last context tokens, the verifier's hidden states of
// those tokens, and the first tokens after the cursor. No KV cache of its own.
import * as ort from 'onnxruntime-node';
import { argmax, maxProb, sample, toProbs } from '../acceptance';
import { PositionCandidates, PositionSource, topCandidates } from '../tree';
import { DiffusionDrafterSpec, ModelFolderError } from '../modelFolder';
import { createSession, SessionOptions } from '../verifier';
import type { Draft, DraftContext, Drafter } from './types';

export interface DiffusionOptions extends SessionOptions {
  maskId: number;
  /** Used as the suffix when there is none. */
  eosId: number;
  vocabSize: number;
  hiddenSize: number;
  /** Most suffix tokens given to the drafter. */
  maxSuffix?: number;
}

type Meta = { name: string; shape?: readonly (number | string)[] };

/** Static dims the graph declares, against config.json and deer.json. */
function checkShapes(session: ort.InferenceSession, spec: DiffusionDrafterSpec, opts: DiffusionOptions): void {
  const meta = (which: 'inputMetadata' | 'outputMetadata', name: string) =>
    (((session as unknown as Record<string, unknown>)[which] ?? []) as Meta[]).find((m) => m.name === name)?.shape;
  const vocab = meta('outputMetadata', 'logits')?.at(-1);
  if (typeof vocab === 'number' && vocab !== opts.vocabSize) {
    throw new ModelFolderError(spec.file, `logits have vocabulary ${vocab} but config.json says vocab_size ${opts.vocabSize}: the drafter was made for another verifier`);
  }
  const hidden = spec.conditioning.includes('hidden') ? meta('inputMetadata', 'hidden_states')?.at(-1) : undefined;
  if (typeof hidden === 'number' && hidden !== opts.hiddenSize) {
    throw new ModelFolderError(spec.file, `input hidden_states has size ${hidden} but deer.json verifier.hidden_states.size says ${opts.hiddenSize}`);
  }
}

export class DiffusionDrafter implements Drafter {
  readonly name = 'deer' as const;
  /** Milliseconds of the last drafter pass. */
  lastPassMs = 0;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: DiffusionDrafterSpec,
    private readonly opts: DiffusionOptions,
  ) {}

  static async create(spec: DiffusionDrafterSpec, opts: DiffusionOptions): Promise<DiffusionDrafter> {
    const session = await createSession(spec.file, opts);
    const need = ['input_ids', ...(spec.conditioning.includes('hidden') ? ['hidden_states'] : []), ...(spec.conditioning.includes('suffix') ? ['suffix_ids'] : [])];
    const missing = need.filter((n) => !session.inputNames.includes(n));
    const extra = session.inputNames.filter((n) => !need.includes(n));
    if (missing.length > 0 || extra.length > 0 || !session.outputNames.includes('logits')) {
      throw new ModelFolderError(
        spec.file,
        `unknown layout for a drafter conditioned on [${spec.conditioning.join(', ')}]: inputs [${session.inputNames.join(', ')}], ` +
          `outputs [${session.outputNames.join(', ')}]; expected inputs [${need.join(', ')}] and output logits`,
      );
    }
    checkShapes(session, spec, opts);
    const drafter = new DiffusionDrafter(session, spec, opts);
    await drafter.trialPass();
    return drafter;
  }

  /**
   * One pass over the whole window (context_window + block_size positions) with the largest token
   * id and the mask: a drafter made for another vocabulary, hidden size or window fails here, at
   * load, naming its file, instead of on every completion.
   */
  private async trialPass(): Promise<void> {
    const { contextWindow: c, blockSize: k, conditioning } = this.spec;
    const { vocabSize: v, maskId, hiddenSize: h } = this.opts;
    const ids = new BigInt64Array(c + k).fill(BigInt(maskId));
    for (let i = 0; i < c; i++) ids[i] = BigInt(i % 2 === 0 ? v - 1 : this.opts.eosId);
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, [1, c + k]) };
    if (conditioning.includes('hidden')) feeds.hidden_states = new ort.Tensor('float32', new Float32Array(c * h), [1, c, h]);
    if (conditioning.includes('suffix')) feeds.suffix_ids = new ort.Tensor('int64', BigInt64Array.from([BigInt(this.opts.eosId)]), [1, 1]);
    let dims: readonly number[];
    try {
      dims = (await this.session.run(feeds)).logits.dims;
    } catch (e) {
      throw new ModelFolderError(
        this.spec.file,
        `a trial pass failed (${c} context + ${k} block positions, context ids up to config.json vocab_size - 1 = ${v - 1}` +
          `${conditioning.includes('hidden') ? `, hidden size ${h}` : ''}): ${(e as Error).message.split('\n')[0]}; ` +
          'the drafter was probably made for another verifier',
      );
    }
    if (dims.length !== 3 || dims[1] !== k || dims[2] !== v) {
      throw new ModelFolderError(this.spec.file, `logits of a trial pass have shape [${dims.join(', ')}], expected [1, ${k}, ${v}] (deer.json block_size, config.json vocab_size)`);
    }
  }

  get blockSize(): number {
    return this.spec.blockSize;
  }

  async begin(): Promise<void> {}

  async draft(ctx: DraftContext, kIn: number): Promise<Draft> {
    const k = Math.min(kIn, this.spec.blockSize);
    if (k <= 0) return { tokens: [] };
    const len = ctx.tokens.length;
    const c = Math.min(this.spec.contextWindow, len);
    const ids = new BigInt64Array(c + k);
    for (let i = 0; i < c; i++) ids[i] = BigInt(ctx.tokens[len - c + i]);
    ids.fill(BigInt(this.opts.maskId), c);
    const feeds: Record<string, ort.Tensor> = { input_ids: new ort.Tensor('int64', ids, [1, c + k]) };
    if (this.spec.conditioning.includes('hidden')) {
      const h = this.opts.hiddenSize;
      const hidden = new Float32Array(c * h); // the pending token's row (the last) stays zeros
      for (let i = 0; i < c - 1; i++) hidden.set(ctx.hiddenAt!(len - c + i), i * h);
      feeds.hidden_states = new ort.Tensor('float32', hidden, [1, c, h]);
    }
    if (this.spec.conditioning.includes('suffix')) {
      const s = ctx.suffixIds.length > 0 ? ctx.suffixIds.slice(0, this.opts.maxSuffix ?? 64) : [this.opts.eosId];
      feeds.suffix_ids = new ort.Tensor('int64', BigInt64Array.from(s, BigInt), [1, s.length]);
    }
    const t0 = performance.now();
    const out = await this.session.run(feeds);
    this.lastPassMs = performance.now() - t0;
    const logits = out.logits.data as Float32Array;
    const vocab = out.logits.dims[2];
    const tokens: number[] = [];
    const probs: Float32Array[] = [];
    const confidence: number[] = [];
    let joint = 1; // the chance that every token so far is accepted, by the drafter's own account
    const mask = this.opts.maskId;
    for (let i = 0; i < k; i++) {
      const row = logits.subarray(i * vocab, (i + 1) * vocab);
      if (mask < vocab) row[mask] = -Infinity; // the mask token is never a completion
      if (ctx.temperature > 0) {
        const p = toProbs(row, ctx.temperature, ctx.topP);
        const x = sample(p, ctx.rng);
        tokens.push(x);
        probs.push(p);
        confidence.push(p[x]);
      } else {
        tokens.push(argmax(row));
        if (joint > 1e-3) {
          const c = maxProb(row);
          confidence.push(c);
          joint *= c;
        }
      }
    }
    const draft: Draft = ctx.temperature > 0 ? { tokens, probs, confidence } : { tokens, confidence };
    if (ctx.candidates > 0) draft.positions = lazyCandidates(logits, vocab, k, ctx.candidates);
    return draft;
  }

  accept(): void {}

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** Each position's candidates, computed when a tree first reaches it (most trees stay shallow). */
function lazyCandidates(logits: Float32Array, vocab: number, k: number, n: number): PositionSource {
  const memo: PositionCandidates[] = [];
  return {
    length: k,
    at: (d) => (d >= 0 && d < k ? (memo[d] ??= softmaxTop(logits.subarray(d * vocab, (d + 1) * vocab), n)) : undefined),
  };
}

/** Logits this far below the row's maximum add under 1e-7 each to the softmax sum: skipped. */
const NEGLIGIBLE_LOGIT = 16;

/** The n likeliest tokens of a logits row with their softmax probabilities (for scoring a tree, not for sampling). */
function softmaxTop(row: Float32Array, n: number): PositionCandidates {
  const top = topCandidates(row, n, -Infinity);
  const max = top.probs[0] ?? 0;
  const floor = max - NEGLIGIBLE_LOGIT;
  let sum = 0;
  for (let i = 0; i < row.length; i++) if (row[i] > floor) sum += Math.exp(row[i] - max);
  return { tokens: top.tokens, probs: top.probs.map((l) => Math.exp(l - max) / sum) };
}
