// A KV-cached decoder session on onnxruntime-node (Optimum / transformers.js layout): the verifier,
// and the autoregressive draft model. Scores q tokens per pass, rolls the cache back to any length,
// reuses it across requests by longest common token prefix, prefills in chunks.
//
// Per-pass floor: the present.* outputs of a pass become the next pass's past as they are
// (onnxruntime-node hands its output buffers to JS without a copy), and a rollback compacts them
// in place, moving only heads 1..n-1 of the rows that stay (copyWithin): no allocation, no copy
// of the kept cache. `bind: true` instead has onnxruntime write outputs into buffers this class
// owns (pre-allocated fetches, two per KV tensor used in turn); measured 5-10% slower per pass
// with onnxruntime-node 1.30 (docs/engine.md), kept for measuring.
import { ENGINE_DEFAULTS } from './defaults';
import * as ort from 'onnxruntime-node';
import { DecoderShape, ModelFolderError } from './modelFolder';
import { positionTables, readGraphSummary } from './onnxGraph';

export interface SessionOptions {
  threads: number;
  spinning: boolean;
}

export interface DecoderOptions extends SessionOptions {
  vocabSize: number;
  maxPositions: number;
  /** Tokens per prefill pass. */
  prefillChunk?: number;
  /** Name of the per-position hidden-state output to keep a cache of, if any. */
  hiddenOutput?: string;
  hiddenSize?: number;
  /** Write outputs into pre-allocated buffers (default false: measured slower, see above). */
  bind?: boolean;
  /** Positions the KV buffers hold at first (they grow by doubling); default 256. */
  initialCapacity?: number;
  /** Which file to name in shape errors about the config (config.json or deer.json). */
  shapeSource?: string;
  /** deer.json declares verifier.tree_attention: the graph must then take tree_mask. */
  treeAttention?: boolean;
  /**
   * deer.json verifier.min_tokens_per_pass: every pass runs at least this many tokens (padded,
   * the padding dropped after the pass). For a graph whose kernels compute a one-token pass
   * differently from longer ones (onnxruntime's int8-compute MatMulNBits): padded, a position's
   * logits are the same whatever else is in the pass, so speculative output equals plain decoding.
   */
  minTokensPerPass?: number;
}

export async function createSession(file: string, opts: SessionOptions): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: opts.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      extra: { session: { 'intra_op.allow_spinning': opts.spinning ? '1' : '0' } },
  };
  try {
    return await ort.InferenceSession.create(file, options);
  } catch (e) {
    throw new ModelFolderError(file, `cannot be loaded by onnxruntime (${(e as Error).message.split('\n')[0]})`);
  }
}

type Meta = { name: string; isTensor: boolean; type?: string; shape?: readonly (number | string)[] };

function metadata(session: ort.InferenceSession, which: 'inputMetadata' | 'outputMetadata'): Map<string, Meta> {
  const list = ((session as unknown as Record<string, unknown>)[which] ?? []) as Meta[];
  return new Map(list.map((m) => [m.name, m]));
}

const KNOWN_INPUTS = new Set(['input_ids', 'attention_mask', 'position_ids', 'tree_mask']);

/** Checks that `session` has the Optimum decoder layout with the declared shape. */
function checkLayout(session: ort.InferenceSession, file: string, shape: DecoderShape, opts: DecoderOptions): void {
  const ins = new Set(session.inputNames);
  const outs = new Set(session.outputNames);
  if (!ins.has('input_ids') || !ins.has('past_key_values.0.key') || !outs.has('logits') || !outs.has('present.0.key')) {
    throw new ModelFolderError(
      file,
      `unknown layout: inputs [${session.inputNames.join(', ')}], outputs [${session.outputNames.join(', ')}]; ` +
        'expected a decoder with input_ids, attention_mask, position_ids, past_key_values.N.key|value -> logits, present.N.key|value',
    );
  }
  const unknown = session.inputNames.filter((n) => !KNOWN_INPUTS.has(n) && !/^past_key_values\.\d+\.(key|value)$/.test(n));
  if (unknown.length > 0) {
    throw new ModelFolderError(file, `has inputs this engine does not feed: ${unknown.join(', ')} (it feeds ${[...KNOWN_INPUTS].join(', ')}, past_key_values.N.key|value)`);
  }
  const layers = session.inputNames.filter((n) => /^past_key_values\.\d+\.key$/.test(n)).length;
  const source = opts.shapeSource ?? 'config.json';
  if (layers !== shape.numLayers) {
    throw new ModelFolderError(file, `has ${layers} layers of past_key_values but ${source} says ${shape.numLayers}`);
  }
  const inMeta = metadata(session, 'inputMetadata');
  for (let i = 0; i < layers; i++) {
    for (const kv of ['key', 'value']) {
      const name = `past_key_values.${i}.${kv}`;
      if (!ins.has(name)) throw new ModelFolderError(file, `input ${name} is missing`);
      if (!outs.has(`present.${i}.${kv}`)) throw new ModelFolderError(file, `output present.${i}.${kv} is missing`);
      const m = inMeta.get(name);
      if (m?.type && m.type !== 'float32') throw new ModelFolderError(file, `${name} is ${m.type}; this engine needs float32 KV`);
      const dims = m?.shape;
      if (dims && dims.length !== 4) throw new ModelFolderError(file, `${name} has rank ${dims.length}, expected 4 [batch, kv_heads, past, head_dim]`);
      if (dims) {
        const [, h, , d] = dims;
        if (typeof h === 'number' && h !== shape.numKvHeads) {
          throw new ModelFolderError(file, `${name} has ${h} KV heads but ${source} says ${shape.numKvHeads}`);
        }
        if (typeof d === 'number' && d !== shape.headDim) {
          throw new ModelFolderError(file, `${name} has head_dim ${d} but ${source} says ${shape.headDim}`);
        }
      }
    }
  }
  const lm = metadata(session, 'outputMetadata').get('logits')?.shape;
  const v = lm?.[lm.length - 1];
  if (typeof v === 'number' && v !== opts.vocabSize) {
    throw new ModelFolderError(file, `logits have vocab ${v} but config.json says vocab_size ${opts.vocabSize}`);
  }
  if (opts.treeAttention && !ins.has('tree_mask')) {
    throw new ModelFolderError(file, 'input tree_mask (declared in deer.json verifier.tree_attention) is missing');
  }
  if (opts.hiddenOutput && !outs.has(opts.hiddenOutput)) {
    throw new ModelFolderError(file, `output ${opts.hiddenOutput} (declared in deer.json verifier.hidden_states) is missing`);
  }
  const hidden = opts.hiddenOutput ? metadata(session, 'outputMetadata').get(opts.hiddenOutput)?.shape?.at(-1) : undefined;
  if (typeof hidden === 'number' && hidden !== opts.hiddenSize) {
    throw new ModelFolderError(file, `output ${opts.hiddenOutput} has size ${hidden} but deer.json verifier.hidden_states.size says ${opts.hiddenSize}`);
  }
}

/**
 * Refuses a graph that looks positions up in a table smaller than the positions the config
 * promises (a learned position embedding, a baked rope cache): past the table every pass would
 * fail, or read garbage, at run time. Graphs that compute positions (rope from the ids) pass.
 */
function checkPositions(file: string, maxPositions: number, source: string): void {
  let tables;
  try {
    tables = positionTables(readGraphSummary(file));
  } catch {
    return; // onnxruntime read the file; a protobuf this reader cannot follow is no reason to refuse it
  }
  const smallest = tables.reduce((a, t) => (a && a.positions <= t.positions ? a : t), tables[0]);
  if (smallest && smallest.positions < maxPositions) {
    throw new ModelFolderError(
      file,
      `looks position ids up in a table of ${smallest.positions} positions (${smallest.tensor}) but ${source} max_position_embeddings says ${maxPositions}`,
    );
  }
}

export function commonPrefixLength(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

export class DecoderSession {
  /** Tokens whose keys and values are in the cache, in order. */
  readonly tokens: number[] = [];
  /** Passes run and their milliseconds, for calibration and stats. */
  lastPassMs = 0;

  private readonly layers: number;
  private readonly rowSize: number; // kv_heads * head_dim floats per position
  private readonly bind: boolean;
  private readonly prefillChunk: number;
  private capacity = 0; // positions the KV buffers hold
  private buffers: [Float32Array, Float32Array][] = []; // per (layer, key|value): ping-pong
  private current = 0; // which of the pair holds the cache
  private plainPast: Float32Array[] = []; // bind: false
  private logitsBuf = new Float32Array(0);
  private hiddenCache = new Float32Array(0); // [capacity, hiddenSize]
  private ones = new BigInt64Array(0);
  private readonly kvNames: string[];
  private readonly presentNames: string[];
  private readonly hasAttentionMask: boolean;
  private readonly hasPositionIds: boolean;
  /** The graph takes tree_mask: one pass can score a draft tree (docs/model-folder.md). */
  readonly treeAttention: boolean;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly file: string,
    private readonly shape: DecoderShape,
    private readonly opts: DecoderOptions,
  ) {
    this.layers = shape.numLayers;
    this.rowSize = shape.numKvHeads * shape.headDim;
    this.bind = opts.bind ?? false;
    this.prefillChunk = opts.prefillChunk ?? ENGINE_DEFAULTS.prefillChunk;
    this.kvNames = [];
    this.presentNames = [];
    for (let i = 0; i < this.layers; i++) {
      for (const kv of ['key', 'value']) {
        this.kvNames.push(`past_key_values.${i}.${kv}`);
        this.presentNames.push(`present.${i}.${kv}`);
      }
    }
    this.hasAttentionMask = session.inputNames.includes('attention_mask');
    this.hasPositionIds = session.inputNames.includes('position_ids');
    this.treeAttention = session.inputNames.includes('tree_mask');
    this.reserve(Math.min(opts.initialCapacity ?? 256, opts.maxPositions));
  }

  /** `shape` may carry the folder's minTokensPerPass (ModelSpec.verifier does): every session of that graph pads. */
  static async create(file: string, shape: DecoderShape & { minTokensPerPass?: number }, opts: DecoderOptions): Promise<DecoderSession> {
    const session = await createSession(file, opts);
    checkLayout(session, file, shape, opts);
    checkPositions(file, opts.maxPositions, 'config.json');
    return new DecoderSession(session, file, shape, { minTokensPerPass: shape.minTokensPerPass, ...opts });
  }

  get length(): number {
    return this.tokens.length;
  }

  get maxPositions(): number {
    return this.opts.maxPositions;
  }

  get vocabSize(): number {
    return this.opts.vocabSize;
  }

  get hiddenSize(): number {
    return this.opts.hiddenOutput ? (this.opts.hiddenSize ?? 0) : 0;
  }

  /** The verifier's hidden state at cached position `pos` (a view; valid until the next pass). */
  hiddenAt(pos: number): Float32Array {
    const h = this.hiddenSize;
    return this.hiddenCache.subarray(pos * h, (pos + 1) * h);
  }

  private reserve(positions: number): void {
    if (positions <= this.capacity) return;
    const cap = Math.max(positions, Math.min(this.opts.maxPositions, this.capacity * 2));
    const used = this.tokens.length * this.rowSize;
    if (this.bind) {
      this.buffers = this.kvNames.map((_, j) => {
        const pair: [Float32Array, Float32Array] = [new Float32Array(cap * this.rowSize), new Float32Array(cap * this.rowSize)];
        if (this.buffers[j]) pair[this.current].set(this.buffers[j][this.current].subarray(0, used));
        return pair;
      });
    }
    if (this.hiddenSize > 0) {
      const h = new Float32Array(cap * this.hiddenSize);
      h.set(this.hiddenCache.subarray(0, this.tokens.length * this.hiddenSize));
      this.hiddenCache = h;
    }
    this.ones = new BigInt64Array(cap).fill(1n);
    this.capacity = cap;
  }

  /**
   * Runs `ids` after the cached tokens and appends them to the cache. Returns the logits of every
   * new position ([ids.length * vocab], a view valid until the next pass), or null when
   * `wantLogits` is false (prefill: logits are then neither fetched nor copied).
   *
   * `parents` makes the pass a draft tree: parents[i] < i is the index in `ids` of token i's
   * parent, -1 for a token that follows the cached sequence. Each token then sees the cache and
   * its own ancestors only, at position past + depth. Omitted: a chain (parents[i] = i - 1).
   * After a tree pass, `retain` keeps one path of it.
   */
  async forward(ids: readonly number[], wantLogits = true, parents?: readonly number[]): Promise<Float32Array | null> {
    const pad = (this.opts.minTokensPerPass ?? 1) - ids.length;
    if (pad > 0 && ids.length > 0) {
      // padding continues the last token's path (its position follows it); nothing reads its rows
      const last = ids.length - 1;
      const padded = [...ids, ...new Array<number>(pad).fill(ids[last])];
      const padParents = parents ? [...parents, last, ...Array.from({ length: pad - 1 }, (_, i) => ids.length + i)] : undefined;
      const base = this.tokens.length;
      const logits = await this.pass(padded, wantLogits, padParents);
      this.rollback(base + ids.length);
      return logits && logits.subarray(0, ids.length * this.opts.vocabSize);
    }
    return this.pass(ids, wantLogits, parents);
  }

  private async pass(ids: readonly number[], wantLogits: boolean, parents?: readonly number[]): Promise<Float32Array | null> {
    const q = ids.length;
    const past = this.tokens.length;
    const total = past + q;
    if (total > this.opts.maxPositions) throw new Error(`sequence of ${total} tokens exceeds the model's ${this.opts.maxPositions} positions`);
    const isTree = parents !== undefined && parents.some((p, i) => p !== i - 1);
    if (isTree && !this.treeAttention) throw new Error(`${this.file} has no tree_mask input: it can verify chains only`);
    if (parents && parents.length !== q) throw new Error(`parents has ${parents.length} entries for ${q} tokens`);
    this.reserve(total);
    const { numKvHeads: h, headDim: d } = this.shape;
    const feeds: Record<string, ort.Tensor> = {
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids, BigInt), [1, q]),
    };
    if (this.hasAttentionMask) feeds.attention_mask = new ort.Tensor('int64', this.ones.subarray(0, total), [1, total]);
    if (this.hasPositionIds || this.treeAttention) {
      const pos = new BigInt64Array(q);
      const mask = this.treeAttention ? new BigInt64Array(q * q) : undefined;
      const depth = new Int32Array(q);
      for (let i = 0; i < q; i++) {
        const p = parents ? parents[i] : i - 1;
        if (p >= i || p < -1) throw new Error(`parents[${i}] = ${p}: a parent must come before its child`);
        depth[i] = p < 0 ? 0 : depth[p] + 1;
        pos[i] = BigInt(past + depth[i]);
        if (mask) {
          if (p >= 0) mask.copyWithin(i * q, p * q, p * q + q);
          mask[i * q + i] = 1n;
        }
      }
      if (this.hasPositionIds) feeds.position_ids = new ort.Tensor('int64', pos, [1, q]);
      if (mask) feeds.tree_mask = new ort.Tensor('int64', mask, [1, q, q]);
    }
    const fetches: Record<string, ort.Tensor | null> = {};
    const vocab = this.opts.vocabSize;
    if (wantLogits) {
      if (this.logitsBuf.length < q * vocab) this.logitsBuf = new Float32Array(Math.max(q, 32) * vocab);
      fetches.logits = this.bind ? new ort.Tensor('float32', this.logitsBuf.subarray(0, q * vocab), [1, q, vocab]) : null;
    }
    const hs = this.hiddenSize;
    if (hs > 0) {
      const view = this.hiddenCache.subarray(past * hs, total * hs);
      fetches[this.opts.hiddenOutput!] = this.bind ? new ort.Tensor('float32', view, [1, q, hs]) : null;
    }
    const cur = this.current;
    for (let j = 0; j < this.kvNames.length; j++) {
      const pastData = this.bind ? this.buffers[j][cur].subarray(0, past * this.rowSize) : (this.plainPast[j] ?? new Float32Array(0));
      feeds[this.kvNames[j]] = new ort.Tensor('float32', pastData, [1, h, past, d]);
      fetches[this.presentNames[j]] = this.bind
        ? new ort.Tensor('float32', this.buffers[j][1 - cur].subarray(0, total * this.rowSize), [1, h, total, d])
        : null;
    }
    const t0 = performance.now();
    const out = await this.session.run(feeds, fetches);
    this.lastPassMs = performance.now() - t0;
    if (this.bind) {
      this.current = 1 - cur;
    } else {
      for (let j = 0; j < this.presentNames.length; j++) this.plainPast[j] = out[this.presentNames[j]].data as Float32Array;
      if (hs > 0) {
        const rows = out[this.opts.hiddenOutput!].data as Float32Array;
        if (rows.length !== q * hs) {
          throw new ModelFolderError(this.file, `output ${this.opts.hiddenOutput} has ${rows.length / q} values per position but deer.json verifier.hidden_states.size says ${hs}`);
        }
        this.hiddenCache.set(rows, past * hs);
      }
    }
    for (const id of ids) this.tokens.push(id);
    if (!wantLogits) return null;
    return this.bind ? this.logitsBuf.subarray(0, q * vocab) : (out.logits.data as Float32Array);
  }

  /** Drops cached positions from `length` on (no-op when already that short). */
  rollback(length: number): void {
    this.retain(length, []);
  }

  /**
   * Keeps the cached positions before `base` and, of those from `base` on, only the ones at
   * base + kept[i] (kept ascending): the accepted path of a tree pass. In place, no allocation:
   * [heads, total, d] -> [heads, length, d], every row moves left or stays, in ascending order,
   * so no row is overwritten before it is read.
   */
  retain(base: number, kept: readonly number[]): void {
    const total = this.tokens.length;
    if (base + kept.length >= total) return;
    for (let i = 0; i < kept.length; i++) {
      if (kept[i] < 0 || base + kept[i] >= total || (i > 0 && kept[i] <= kept[i - 1])) throw new Error(`retain: kept indices must ascend within the cache (${kept.join(',')})`);
    }
    // runs of rows to keep: [from, to) -> at
    const runs: [number, number, number][] = [[0, base, 0]];
    for (let i = 0; i < kept.length; i++) {
      const at = base + i;
      const from = base + kept[i];
      const last = runs[runs.length - 1];
      if (last[1] === from) last[1]++;
      else runs.push([from, from + 1, at]);
    }
    const length = base + kept.length;
    const { numKvHeads: heads, headDim: d } = this.shape;
    for (let j = 0; j < this.kvNames.length; j++) {
      // the cache is ours (bind) or onnxruntime's own present buffer: compacted the same way
      const buf = this.bind ? this.buffers[j][this.current] : this.plainPast[j];
      for (let hh = 0; hh < heads; hh++) {
        for (const [from, to, at] of runs) {
          if (hh * length + at !== hh * total + from) buf.copyWithin((hh * length + at) * d, (hh * total + from) * d, (hh * total + to) * d);
        }
      }
      if (!this.bind) this.plainPast[j] = buf.subarray(0, heads * length * d);
    }
    const hs = this.hiddenSize;
    if (hs > 0) {
      for (const [from, to, at] of runs) if (at !== from) this.hiddenCache.copyWithin(at * hs, from * hs, to * hs);
    }
    const tokens = this.tokens;
    for (let i = 0; i < kept.length; i++) tokens[base + i] = tokens[base + kept[i]];
    tokens.length = length;
  }

  /**
   * Makes the cache hold exactly `ids`: keeps the longest common prefix with what is cached and
   * runs the rest in chunks. Returns how many tokens were reused.
   */
  async prefill(ids: readonly number[], signal?: AbortSignal): Promise<number> {
    const reused = commonPrefixLength(this.tokens, ids);
    this.rollback(reused);
    for (let i = reused; i < ids.length; i += this.prefillChunk) {
      if (signal?.aborted) break;
      await this.forward(ids.slice(i, i + this.prefillChunk), false);
    }
    return reused;
  }

  clear(): void {
    this.rollback(0);
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}
