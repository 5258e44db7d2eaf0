// The DEER drafter: one ONNX pass fills a block of k masked positions after the verified sequence,
// conditioned (as deer.json declares) on the last context tokens, the verifier's hidden states of
// those tokens, and the first tokens after the cursor. No KV cache of its own. A drafter with a
// reduced head scores only the tokens listed by its head_ids output (docs/model-folder.md).
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

/** The optional output naming the token id of each logit of a reduced head. */
const HEAD_IDS = 'head_ids';

/** Static dims the graph declares, against config.json and deer.json. */
function checkShapes(session: ort.InferenceSession, spec: DiffusionDrafterSpec, opts: DiffusionOptions): void {
  const meta = (which: 'inputMetadata' | 'outputMetadata', name: string) =>
    (((session as unknown as Record<string, unknown>)[which] ?? []) as Meta[]).find((m) => m.name === name)?.shape;
  const vocab = meta('outputMetadata', 'logits')?.at(-1);
  if (!session.outputNames.includes(HEAD_IDS) && typeof vocab === 'number' && vocab !== opts.vocabSize) {
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

  /** Token id of each logit when the head is reduced (read once, at load); undefined: logits cover the vocabulary. */
  private headIds?: Int32Array;
  /** Index of the mask token among the logits, -1 when it has none. */
  private maskIndex = -1;

  static async create(spec: DiffusionDrafterSpec, opts: DiffusionOptions): Promise<DiffusionDrafter> {
    const session = await createSession(spec.file, opts);
    const need = ['input_ids', ...(spec.conditioning.includes('hidden') ? ['hidden_states'] : []), ...(spec.conditioning.includes('suffix') ? ['suffix_ids'] : [])];
    const missing = need.filter((n) => !session.inputNames.includes(n));
    const extra = session.inputNames.filter((n) => !need.includes(n));
    const extraOut = session.outputNames.filter((n) => n !== 'logits' && n !== HEAD_IDS);
    if (missing.length > 0 || extra.length > 0 || !session.outputNames.includes('logits') || extraOut.length > 0) {
      throw new ModelFolderError(
        spec.file,
        `unknown layout for a drafter conditioned on [${spec.conditioning.join(', ')}]: inputs [${session.inputNames.join(', ')}], ` +
          `outputs [${session.outputNames.join(', ')}]; expected inputs [${need.join(', ')}] and output logits (and optionally ${HEAD_IDS})`,
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
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.session.run(feeds);
    } catch (e) {
      throw new ModelFolderError(
        this.spec.file,
        `a trial pass failed (${c} context + ${k} block positions, context ids up to config.json vocab_size - 1 = ${v - 1}` +
          `${conditioning.includes('hidden') ? `, hidden size ${h}` : ''}): ${(e as Error).message.split('\n')[0]}; ` +
          'the drafter was probably made for another verifier',
      );
    }
    const dims = out.logits.dims;
    if (out[HEAD_IDS] !== undefined) this.headIds = this.readHeadIds(out[HEAD_IDS]);
    const width = this.headIds?.length ?? v;
    if (dims.length !== 3 || dims[1] !== k || dims[2] !== width) {
      const what = this.headIds ? `${HEAD_IDS} length` : 'config.json vocab_size';
      throw new ModelFolderError(this.spec.file, `logits of a trial pass have shape [${dims.join(', ')}], expected [1, ${k}, ${width}] (deer.json block_size, ${what})`);
    }
    this.maskIndex = this.headIds ? this.headIds.indexOf(maskId) : maskId < v ? maskId : -1;
  }

  /** head_ids must be distinct token ids of the verifier's vocabulary. */
  private readHeadIds(t: ort.Tensor): Int32Array {
    const v = this.opts.vocabSize;
    const bad = (why: string) => new ModelFolderError(this.spec.file, `output ${HEAD_IDS} ${why}`);
    if (t.dims.length !== 1 || (t.type !== 'int64' && t.type !== 'int32')) throw bad(`must be a 1-D int64 tensor, got ${t.type} [${t.dims.join(', ')}]`);
    const ids = Int32Array.from(t.data as ArrayLike<number | bigint>, Number);
    const seen = new Uint8Array(v);
    for (const id of ids) {
      if (!(id >= 0 && id < v)) throw bad(`holds token id ${id}, outside config.json vocab_size ${v}: the drafter was made for another verifier`);
      if (seen[id]) throw bad(`lists token id ${id} twice`);
      seen[id] = 1;
    }
    return ids;
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
    const out = await this.session.run(feeds, ['logits']);
    this.lastPassMs = performance.now() - t0;
    const logits = out.logits.data as Float32Array;
    const width = out.logits.dims[2];
    const head = this.headIds;
    const tokens: number[] = [];
    const probs: Float32Array[] = [];
    const confidence: number[] = [];
    let joint = 1; // the chance that every token so far is accepted, by the drafter's own account
    for (let i = 0; i < k; i++) {
      const row = logits.subarray(i * width, (i + 1) * width);
      if (this.maskIndex >= 0) row[this.maskIndex] = -Infinity; // the mask token is never a completion
      if (ctx.temperature > 0) {
        const p = toProbs(row, ctx.temperature, ctx.topP);
        const x = sample(p, ctx.rng);
        tokens.push(head ? head[x] : x);
        probs.push(head ? spread(p, head, this.opts.vocabSize) : p);
        confidence.push(p[x]);
      } else {
        const x = argmax(row);
        tokens.push(head ? head[x] : x);
        if (joint > 1e-3) {
          const c = maxProb(row);
          confidence.push(c);
          joint *= c;
        }
      }
    }
    const draft: Draft = ctx.temperature > 0 ? { tokens, probs, confidence } : { tokens, confidence };
    if (ctx.candidates > 0) draft.positions = lazyCandidates(logits, width, k, ctx.candidates, head);
    return draft;
  }

  accept(): void {}

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** A reduced head's distribution over the whole vocabulary (zero outside the head). */
function spread(p: Float32Array, head: Int32Array, vocab: number): Float32Array {
  const full = new Float32Array(vocab);
  for (let j = 0; j < head.length; j++) full[head[j]] = p[j];
  return full;
}

/** Each position's candidates, computed when a tree first reaches it (most trees stay shallow). */
function lazyCandidates(logits: Float32Array, width: number, k: number, n: number, head?: Int32Array): PositionSource {
  const memo: PositionCandidates[] = [];
  const at = (d: number): PositionCandidates => {
    const top = softmaxTop(logits.subarray(d * width, (d + 1) * width), n);
    return head ? { tokens: top.tokens.map((j) => head[j]), probs: top.probs } : top;
  };
  return { length: k, at: (d) => (d >= 0 && d < k ? (memo[d] ??= at(d)) : undefined) };
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
