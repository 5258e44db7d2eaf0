// The engine's request contract: streaming, stop rules, cancellation, queueing, sampling, stats;
// and the loop with scripted drafters (perfect, half right, wrong) staying lossless.
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CompletionResult, Engine, InvalidRequestError } from '../../src/engine';
import type { Draft, DraftContext, Drafter } from '../../src/engine/drafters/types';
import { readModelFolder } from '../../src/engine/modelFolder';
import { makeStopRule } from '../../src/engine/stopRule';
import { runLoop } from '../../src/engine/speculative';
import { DraftPolicy } from '../../src/engine/draftPolicy';
import { PassTimeModel } from '../../src/engine/stats';
import { DeerTokenizer } from '../../src/engine/tokenizer';
import { DecoderSession } from '../../src/engine/verifier';
import { CONDITIONED_MODEL, DEFAULT_MODEL, evalPrompts, hasModel, TINY_MODEL } from './support';

const MODEL = hasModel(TINY_MODEL) ? TINY_MODEL : CONDITIONED_MODEL;
const PROMPT = evalPrompts('mbpp-py-reworded.jsonl', 1)[0]?.prompt ?? 'def add(a, b):\n    """Add two numbers."""\n';
const MAX = 40;

describe(`engine requests (${MODEL.split('/').slice(-1)[0]})`, { skip: !hasModel(MODEL) && 'model fixture missing' }, () => {
  let engine: Engine;
  let base: CompletionResult;
  const drafted = () => engine.info.drafters.filter((d) => d !== 'none');

  before(async () => {
    engine = await Engine.load({ modelDir: MODEL, threads: 1, spinning: false });
    base = await engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: 'none' });
  });
  after(async () => engine?.dispose());

  it('reports model info and calibrated stats', () => {
    assert.ok(engine.info.drafters.includes('none') && engine.info.drafters.includes('ngram'));
    assert.ok(engine.info.vocabSize > 0);
    assert.ok(engine.countTokens('hello world') > 0);
    const s = base.stats;
    assert.equal(s.drafter, 'none');
    assert.equal(s.newTokens, base.tokens.length);
    assert.equal(s.passes, s.newTokens);
    assert.equal(s.meanAccepted, 1);
    assert.deepEqual(s.acceptedHistogram, [s.passes]);
    assert.ok(s.tokensPerSecond > 0 && s.estimatedSpeedup > 0);
    assert.ok(s.newTokens <= MAX);
  });

  it('streams chunks that add up to the text, for every drafter', async () => {
    for (const d of engine.info.drafters) {
      const chunks: string[] = [];
      const r = await engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: d }, { onChunk: (c) => chunks.push(c) });
      assert.equal(chunks.join(''), r.text, d);
      assert.equal(r.text, base.text, d);
      assert.ok(r.stats.reusedTokens > 0, `${d}: the prompt's cache was reused`);
      const hist = r.stats.acceptedHistogram.reduce((a, b) => a + b, 0);
      assert.equal(hist, r.stats.passes);
    }
  });

  it('stops at a stop string and by a caller rule, the same way for every drafter', async () => {
    const text = base.text;
    assert.ok(text.length > 6, 'baseline too short to test stops');
    const stop = text.slice(4, 6);
    const at = text.indexOf(stop);
    for (const d of engine.info.drafters) {
      const r = await engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: d, stop: [stop] });
      assert.equal(r.stopReason, 'stop');
      assert.equal(r.text, text.slice(0, at), d);
      const ruled = await engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: d, stopAt: (g) => (g.length >= 5 ? 5 : null) });
      assert.equal(ruled.stopReason, 'rule');
      assert.equal(ruled.text, text.slice(0, 5), d);
    }
  });

  it('cancellation mid-run resolves with the text so far and leaves a working session', async () => {
    // Without the repetition guard text streams as it comes (the guard holds back a looping tail until the end).
    const req = { prefix: PROMPT, maxNewTokens: MAX, stopOnRepeat: false } as const;
    const whole = await engine.complete({ ...req, drafter: 'none' });
    for (const d of drafted()) {
      const ac = new AbortController();
      const r = await engine.complete({ ...req, drafter: d }, { signal: ac.signal, onChunk: () => ac.abort() });
      assert.equal(r.stopReason, 'aborted');
      assert.ok(whole.text.startsWith(r.text), d);
      assert.ok(r.tokens.length < whole.tokens.length);
      const again = await engine.complete({ ...req, drafter: d });
      assert.deepEqual(again.tokens, whole.tokens, `${d} after cancellation`);
    }
    const ac = new AbortController();
    ac.abort();
    const early = await engine.complete({ prefix: PROMPT + '\n', maxNewTokens: MAX, drafter: 'ngram' }, { signal: ac.signal });
    assert.equal(early.stopReason, 'aborted');
    assert.equal(early.text, '');
    const after = await engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: 'none' });
    assert.deepEqual(after.tokens, base.tokens);
  });

  it('queues concurrent requests instead of corrupting the cache', async () => {
    const other = PROMPT.replace(/\n$/, '') + '  # note\n';
    const ref = await engine.complete({ prefix: other, maxNewTokens: 16, drafter: 'none' });
    const runs = await Promise.all([
      engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: 'ngram' }),
      engine.complete({ prefix: other, maxNewTokens: 16, drafter: drafted().at(-1)! }),
      engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: 'none' }),
    ]);
    assert.deepEqual(runs[0].tokens, base.tokens);
    assert.deepEqual(runs[1].tokens, ref.tokens);
    assert.deepEqual(runs[2].tokens, base.tokens);
  });

  it('a request aborted while queued is answered at once and never runs', async () => {
    const order: string[] = [];
    const running = engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: 'none' }).then((r) => (order.push('running'), r));
    const ac = new AbortController();
    const queued = engine.complete({ prefix: PROMPT + 'x', maxNewTokens: MAX, drafter: 'ngram' }, { signal: ac.signal }).then((r) => (order.push('queued'), r));
    ac.abort();
    const [r, q] = await Promise.all([running, queued]);
    assert.deepEqual(order, ['queued', 'running'], 'the aborted request waited for the one before it');
    assert.equal(q.stopReason, 'aborted');
    assert.equal(q.stats.promptTokens, 0, 'it never ran');
    assert.deepEqual(r.tokens, base.tokens);
  });

  it('samples reproducibly with a seed, for every drafter', async () => {
    for (const d of engine.info.drafters) {
      const req = { prefix: PROMPT, maxNewTokens: 24, drafter: d, temperature: 0.8, topP: 0.95, seed: 42 };
      const a = await engine.complete(req);
      const b = await engine.complete(req);
      assert.deepEqual(a.tokens, b.tokens, d);
      assert.ok(a.tokens.every((t) => t >= 0 && t < engine.info.vocabSize));
    }
  });

  it('typing one more character at the cursor re-reads only the end of the prompt (FIM, spm)', async () => {
    const suffix = '\n\n\ndef check(candidate):\n    assert candidate(1) is not None\n';
    const first = await engine.complete({ prefix: PROMPT, suffix, maxNewTokens: 4, drafter: 'ngram' });
    const typed = await engine.complete({ prefix: PROMPT + '    r', suffix, maxNewTokens: 4, drafter: 'ngram' });
    assert.ok(first.stats.promptTokens > 20);
    assert.ok(typed.stats.reusedTokens >= typed.stats.promptTokens - 6, `reused ${typed.stats.reusedTokens} of ${typed.stats.promptTokens}`);
    const again = await engine.complete({ prefix: PROMPT + '    re', suffix, maxNewTokens: 4, drafter: 'none' });
    assert.ok(again.stats.reusedTokens >= again.stats.promptTokens - 6);
  });

  it('rejects bad options with a named error that names the field, and keeps working', async () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ blockSize: -3 }, 'blockSize'],
      [{ blockSize: 2.5 }, 'blockSize'],
      [{ treeBudget: -1 }, 'treeBudget'],
      [{ treeBudget: 1.5 }, 'treeBudget'],
      [{ maxNewTokens: NaN }, 'maxNewTokens'],
      [{ maxNewTokens: -1 }, 'maxNewTokens'],
      [{ temperature: 0.8, topP: 0 }, 'topP'],
      [{ temperature: NaN }, 'temperature'],
      [{ seed: 1.5 }, 'seed'],
      [{ prefix: 42 }, 'prefix'],
      [{ stopSpec: { mode: 'lines', minIndent: 0, lineSuffix: '', nextLine: '', maxLines: 1 } }, 'stopSpec'],
      [{ stopSpec: { mode: 'multi', minIndent: 0, lineSuffix: '', nextLine: '' } }, 'stopSpec'],
    ];
    for (const [over, field] of bad) {
      await assert.rejects(engine.complete({ prefix: PROMPT, maxNewTokens: 4, ...over } as never), (e: unknown) => {
        assert.ok(e instanceof InvalidRequestError, `${JSON.stringify(over)}: expected InvalidRequestError, got ${e}`);
        assert.equal(e.field, field);
        assert.match(e.message, new RegExp(field));
        return true;
      });
    }
    const r = await engine.complete({ prefix: PROMPT, maxNewTokens: MAX, drafter: 'none' });
    assert.deepEqual(r.tokens, base.tokens);
  });

  it('a stopSpec in the request stops where its rule (makeStopRule) stops, for every drafter', async () => {
    const spec = { mode: 'single', minIndent: 0, lineSuffix: '', nextLine: '', maxLines: 1 } as const;
    let ruled = 0;
    for (const { prompt } of evalPrompts('mbpp-py-reworded.jsonl', 6)) {
      const byRule = await engine.complete({ prefix: prompt, maxNewTokens: MAX, drafter: 'none', stopAt: makeStopRule(spec) });
      if (byRule.stopReason === 'rule') ruled++;
      for (const d of engine.info.drafters) {
        const r = await engine.complete({ prefix: prompt, maxNewTokens: MAX, drafter: d, stopSpec: spec });
        assert.equal(r.text, byRule.text, d);
        assert.equal(r.stopReason, byRule.stopReason, d);
      }
    }
    assert.ok(ruled > 0, 'no baseline has a newline to stop at');
  });

  it('a 10 MB prefix is cut by characters before it is tokenized: the window\'s result, bounded memory', async (t) => {
    const line = 'total = total + values[i] * 2\n';
    const huge = line.repeat(Math.ceil(10_000_000 / line.length));
    const window = line.repeat(4000);
    const expected = await engine.complete({ prefix: window, suffix: window, maxNewTokens: 8, drafter: 'none' });
    engine.clearCache();
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const r = await engine.complete({ prefix: huge, suffix: huge, maxNewTokens: 8, drafter: 'none' });
    const ms = performance.now() - t0;
    const grew = (process.memoryUsage().rss - rss0) / 2 ** 20;
    t.diagnostic(`10 MB prefix + suffix: ${ms.toFixed(0)} ms, RSS +${grew.toFixed(0)} MB`);
    assert.deepEqual(r.tokens, expected.tokens);
    assert.equal(r.stats.promptTokens, expected.stats.promptTokens);
    assert.ok(grew < 200, `RSS grew ${grew.toFixed(0)} MB`);
  });

  it('a looping model stops at the repetition, keeping one copy, and never streams the rest', async () => {
    const prefix = 'import os\nimport os\nimport os\n';
    const loop = await engine.complete({ prefix, maxNewTokens: 64, drafter: 'none', stopOnRepeat: false });
    const lines = loop.text.split('\n');
    assert.ok(lines.length > 4 && lines[1] === lines[0] && lines[2] === lines[0], `the model does not loop here: ${JSON.stringify(loop.text)}`);
    for (const d of engine.info.drafters) {
      const chunks: string[] = [];
      const r = await engine.complete({ prefix, maxNewTokens: 64, drafter: d }, { onChunk: (c) => chunks.push(c) });
      assert.equal(r.stopReason, 'repeat', d);
      assert.equal(r.text, `${lines[0]}\n`, `${d}: one copy of the looping line`);
      assert.equal(chunks.join(''), r.text, `${d}: streamed exactly what is kept`);
      assert.ok(r.tokens.length < loop.tokens.length);
    }
  });

  it('a folder without drafters: deer and ar are refused by name, ngram (its default) gives the same tokens', async () => {
    // The same verifier, with a deer.json that lists no drafter.
    const dir = mkdtempSync(join(tmpdir(), 'deer-no-drafters-'));
    try {
      mkdirSync(join(dir, 'onnx'));
      for (const f of readdirSync(MODEL)) if (f !== 'onnx' && f !== 'deer.json' && statSync(join(MODEL, f)).isFile()) copyFileSync(join(MODEL, f), join(dir, f));
      const manifest = JSON.parse(readFileSync(join(MODEL, 'deer.json'), 'utf8'));
      copyFileSync(join(MODEL, manifest.verifier.file), join(dir, manifest.verifier.file));
      writeFileSync(join(dir, 'deer.json'), JSON.stringify({ ...manifest, drafters: {} }));
      const plain = await Engine.load({ modelDir: dir, threads: 1, spinning: false, calibrate: false });
      try {
        assert.deepEqual(plain.info.drafters, ['none', 'ngram']);
        assert.equal(plain.info.defaultDrafter, 'ngram');
        for (const d of ['deer', 'ar'] as const) {
          await assert.rejects(plain.complete({ prefix: 'x', maxNewTokens: 4, drafter: d }), new RegExp(`drafter "${d}" is not available`));
        }
        const r = await plain.complete({ prefix: PROMPT, maxNewTokens: MAX });
        assert.equal(r.stats.drafter, 'ngram');
        assert.deepEqual(r.tokens, base.tokens, 'the same verifier writes the same tokens');
      } finally {
        await plain.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Drafts from a script: `truth` (the verifier's own output) with errors injected. */
class ScriptedDrafter implements Drafter {
  readonly name = 'ngram' as const;
  constructor(
    private readonly truth: number[],
    private readonly promptLength: number,
    private readonly mode: 'perfect' | 'half' | 'wrong',
  ) {}
  async begin(): Promise<void> {}
  async draft(ctx: DraftContext, k: number): Promise<Draft> {
    const at = ctx.tokens.length - this.promptLength;
    const tokens = this.truth.slice(at, at + k);
    if (this.mode === 'half' && tokens.length > 1) tokens[Math.floor(tokens.length / 2)] = (tokens[Math.floor(tokens.length / 2)] + 1) % 100;
    if (this.mode === 'wrong') for (let i = 0; i < tokens.length; i++) tokens[i] = (tokens[i] + 1) % 100;
    return { tokens };
  }
  accept(): void {}
  async dispose(): Promise<void> {}
}

/** Per-position candidates where the verifier's token is never the likeliest: only a tree finds it. */
class SecondChoiceDrafter implements Drafter {
  readonly name = 'deer' as const;
  constructor(
    private readonly truth: number[],
    private readonly promptLength: number,
  ) {}
  async begin(): Promise<void> {}
  async draft(ctx: DraftContext, k: number): Promise<Draft> {
    const at = ctx.tokens.length - this.promptLength;
    const truth = this.truth.slice(at, at + k);
    const wrong = truth.map((t) => (t + 1) % 100);
    return {
      tokens: wrong,
      confidence: wrong.map(() => 0.55),
      positions: ctx.candidates > 0 ? truth.map((t, i) => ({ tokens: [wrong[i], t], probs: [0.55, 0.45] })) : undefined,
    };
  }
  accept(): void {}
  async dispose(): Promise<void> {}
}

describe('the loop with scripted drafters', { skip: !hasModel(MODEL) && 'model fixture missing' }, () => {
  /** The whole draft is sent (requests here are not adaptive). */
  const policy = () => new DraftPolicy(new PassTimeModel(1, 0), { sizeBeforeDraft: false });
  let verifier: DecoderSession;
  let tokenizer: DeerTokenizer;
  before(async () => {
    const spec = readModelFolder(MODEL);
    tokenizer = new DeerTokenizer(spec);
    verifier = await DecoderSession.create(spec.verifier.file, spec.verifier, { threads: 1, spinning: false, vocabSize: spec.vocabSize, maxPositions: spec.maxPositions });
  });
  after(async () => verifier?.dispose());

  it('accepts long runs from a perfect drafter, rolls back after wrong tokens, and stays lossless', async () => {
    const prompt = tokenizer.encode(PROMPT);
    const req = { prompt, suffixIds: [], maxNewTokens: 33, blockSize: 8, temperature: 0, topP: 1, seed: 1, stop: [] };
    const none = await runLoop({ verifier, drafter: new ScriptedDrafter([], prompt.length, 'wrong'), tokenizer }, { ...req, blockSize: 0 }, policy());
    // the verifier's own tokens, then EOS-free padding so the scripted drafter can see ahead
    const truth = [...none.tokens];
    assert.ok(truth.length > 0);
    for (const mode of ['perfect', 'half', 'wrong'] as const) {
      const r = await runLoop({ verifier, drafter: new ScriptedDrafter(truth, prompt.length, mode), tokenizer }, req, policy());
      assert.deepEqual(r.tokens, none.tokens, mode);
      if (mode === 'perfect' && none.stopReason === 'max_tokens') {
        assert.equal(r.stats.passes, Math.ceil(33 / 9));
        assert.ok(r.stats.acceptedHistogram[8] >= 3);
      }
      if (mode === 'wrong') assert.equal(r.stats.passes, none.tokens.length + (none.stopReason === 'eos' || none.stopReason === 'control' ? 1 : 0));
    }
  });

  it('a rule that cuts inside a token, mid-block, returns the tokens covering the text: the cut one last', async () => {
    const prompt = tokenizer.encode(PROMPT);
    const req = { prompt, suffixIds: [], maxNewTokens: 33, blockSize: 8, temperature: 0, topP: 1, seed: 1, stop: [] };
    const none = await runLoop({ verifier, drafter: new ScriptedDrafter([], prompt.length, 'wrong'), tokenizer }, { ...req, blockSize: 0 }, policy());
    const ends = none.tokens.map((_, i) => tokenizer.decode(none.tokens.slice(0, i + 1)).length);
    // a token of two or more characters with more after it, so a block runs past the cut
    const inside = ends.findIndex((end, i) => i > 0 && i < ends.length - 2 && end - ends[i - 1] >= 2);
    assert.ok(inside > 0, `no token of two or more characters in ${JSON.stringify(none.text)}`);
    const cut = ends[inside] - 1;
    const stopAt = (g: string) => (g.length >= cut ? cut : null);
    const r = await runLoop({ verifier, drafter: new ScriptedDrafter(none.tokens, prompt.length, 'perfect'), tokenizer }, { ...req, stopAt }, policy());
    assert.equal(r.stopReason, 'rule');
    assert.equal(r.text, none.text.slice(0, cut));
    assert.ok(r.stats.newTokens > inside + 1, `the pass that hit the cut went past it (${r.stats.newTokens} tokens)`);
    assert.deepEqual(r.tokens, none.tokens.slice(0, inside + 1));
    assertTokensCoverText(tokenizer, r, 'perfect drafter');
  });

  it("a draft tree accepts the verifier's tokens from the drafter's second choices, where a chain accepts none", async (t) => {
    if (!verifier.treeAttention) {
      t.skip('verifier without tree_mask');
      return;
    }
    const prompt = tokenizer.encode(PROMPT);
    const req = { prompt, suffixIds: [], maxNewTokens: 33, blockSize: 8, temperature: 0, topP: 1, seed: 1, stop: [] };
    const none = await runLoop({ verifier, drafter: new ScriptedDrafter([], prompt.length, 'wrong'), tokenizer }, { ...req, blockSize: 0 }, policy());
    const chain = await runLoop({ verifier, drafter: new SecondChoiceDrafter(none.tokens, prompt.length), tokenizer }, { ...req, treeBudget: 0 }, policy());
    assert.deepEqual(chain.tokens, none.tokens);
    assert.equal(chain.stats.acceptedHistogram.length, 1, 'the chain accepts nothing');
    for (const treeBudget of [4, 64]) {
      const tree = await runLoop({ verifier, drafter: new SecondChoiceDrafter(none.tokens, prompt.length), tokenizer }, { ...req, treeBudget }, policy());
      assert.deepEqual(tree.tokens, none.tokens, `budget ${treeBudget}`);
      assert.ok(tree.stats.trees);
      // the calibration learns that the drafter's first choices fail, so the tree's nodes go to the second ones
      assert.ok(tree.stats.meanAccepted >= 3, `budget ${treeBudget}: mean accepted ${tree.stats.meanAccepted}`);
    }
  });
});

/**
 * CompletionResult.tokens: exactly the text's tokens, except where a stop string or rule cut inside
 * the last one; then the shortest run of tokens whose text starts with the result's.
 */
function assertTokensCoverText(tokenizer: DeerTokenizer, r: CompletionResult, label: string): void {
  // The tokens re-spell the healed end of the prefix first (CompletionRequest.heal).
  const full = tokenizer.decode(r.tokens).slice((r.healed ?? '').length);
  if (r.stopReason !== 'stop' && r.stopReason !== 'rule' && r.stopReason !== 'repeat') {
    assert.equal(r.text, full, `${label}: the text is exactly the tokens' text`);
    return;
  }
  assert.ok(full.startsWith(r.text), `${label}: ${JSON.stringify(full)} does not start with ${JSON.stringify(r.text)}`);
  assert.ok(tokenizer.decode(r.tokens.slice(0, -1)).length < r.text.length || r.tokens.length === 0, `${label}: the last token is past the text`);
}

/** Printable ASCII soup with newlines, from a seeded generator. */
function randomDoc(seed: number, length: number): string {
  let x = seed;
  let out = '';
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const c = x % 97;
    out += c === 96 ? '\n' : String.fromCharCode(32 + c);
  }
  return out;
}

describe('no control token reaches the output (models/default)', { skip: !hasModel(DEFAULT_MODEL) && 'models/default missing' }, () => {
  let engine: Engine;
  let tokenizer: DeerTokenizer;
  before(async () => {
    engine = await Engine.load({ modelDir: DEFAULT_MODEL, threads: 1, spinning: false, calibrate: false });
    tokenizer = new DeerTokenizer(readModelFolder(DEFAULT_MODEL));
  });
  after(async () => engine?.dispose());

  const docs: [string, string, string][] = [
    ['empty document', '', ''],
    ['special-token strings', '<fim_suffix><fim_middle><|endoftext|>\n<fim_prefix>const x = "<|mask|>";\n', '\n<|file_sep|><fim_pad>\n'],
    ['random text 1', randomDoc(1, 300), randomDoc(2, 80)],
    ['random text 2', randomDoc(3, 200), ''],
  ];
  for (const [name, prefix, suffix] of docs) {
    it(`${name}: no control id in the tokens, none spelled in the text by the loop`, async () => {
      for (const drafter of ['none', 'deer'] as const) {
        for (const [temperature, seed] of [[0, 0], [0.8, 1]]) {
          const r = await engine.complete({ prefix, suffix, maxNewTokens: 24, drafter, temperature, seed });
          const bad = r.tokens.filter((t) => tokenizer.isControl(t));
          assert.deepEqual(bad, [], `${drafter} t=${temperature}: control ids in ${JSON.stringify(r.text)}`);
          assertTokensCoverText(tokenizer, r, `${drafter} t=${temperature}`);
        }
      }
    });
  }
});

describe('prompt lookup in sampled requests (models/default)', { skip: !hasModel(DEFAULT_MODEL) && 'models/default missing' }, () => {
  let engine: Engine;
  before(async () => {
    engine = await Engine.load({ modelDir: DEFAULT_MODEL, threads: 1, spinning: false, calibrate: false });
  });
  after(async () => engine?.dispose());

  it('draft trees take lookup branches at t=0.8 (fewer passes on repeated code); chains draft with deer alone', async () => {
    const fn = 'export function add(a: number, b: number): number {\n';
    const prefix = `${fn}  return a + b;\n}\n\n`.repeat(4) + `${fn}  return`;
    let treePasses = 0;
    let lookupTreePasses = 0;
    for (const seed of [1, 2, 3]) {
      const base = { prefix, maxNewTokens: 40, drafter: 'deer' as const, temperature: 0.8, seed };
      const tree = await engine.complete({ ...base, treeBudget: 4 });
      const lookupTree = await engine.complete({ ...base, treeBudget: 4, lookup: true });
      treePasses += tree.stats.passes;
      lookupTreePasses += lookupTree.stats.passes;
      const chain = await engine.complete({ ...base, treeBudget: 0 });
      const lookupChain = await engine.complete({ ...base, treeBudget: 0, lookup: true });
      assert.deepEqual(lookupChain.tokens, chain.tokens, `seed ${seed}: a sampled chain ignores lookup`);
      assert.equal(lookupChain.stats.passes, chain.stats.passes);
    }
    assert.ok(lookupTreePasses < 0.75 * treePasses, `passes with lookup ${lookupTreePasses}, without ${treePasses}`);
  });
});
