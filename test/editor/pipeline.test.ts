// The inline recipe with a scripted engine: debounce, cancellation, caching and typing through,
// what is sent to the engine. (worker.test.ts runs the same pipeline on the real engine.)
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { CompletionRequest, CompletionResult, RunStats } from '../../src/engine/api';
import { DEFAULT_CONFIG, type DeerConfig } from '../../src/editor/config';
import { docFromString } from '../../src/editor/context';
import { describeAnswer, InlinePipeline, type InlineEngine } from '../../src/editor/inlineCompletion';
import type { CompletionRecord } from '../../src/editor/stats';
import type { CompleteOptions } from '../../src/worker/engineClient';
import { atCursor } from './helpers';

function stats(newTokens: number): RunStats {
  return {
    drafter: 'deer', promptTokens: 10, reusedTokens: 0, newTokens, passes: 2, acceptedHistogram: [0, 1, 1], meanAccepted: 2,
    prefillMs: 1, draftMs: 1, verifyMs: 1, decodeMs: 2, totalMs: 3, tokensPerSecond: 100, estimatedSpeedup: 2,
  };
}

class ScriptedEngine implements InlineEngine {
  all: { request: CompletionRequest; options: CompleteOptions }[] = [];
  /** Requests that generate (prefetches of the KV cache left out). */
  get calls(): { request: CompletionRequest; options: CompleteOptions }[] {
    return this.all.filter((c) => c.options.lane !== 'prefetch');
  }
  info = { modelDir: '/m', name: 'scripted', vocabSize: 10, drafters: ['none' as const, 'ngram' as const], defaultBlockSize: 8, fim: true, defaultDrafter: 'ngram' as const, maxPositions: 2048 };
  constructor(private readonly reply: (req: CompletionRequest) => string, private readonly logprobs?: number[]) {}
  async complete(request: CompletionRequest, options: CompleteOptions): Promise<CompletionResult> {
    this.all.push({ request, options });
    if (options.lane === 'prefetch') return { text: '', tokens: [], stopReason: 'max_tokens', stats: stats(0) };
    const text = this.reply(request);
    return { text, tokens: [], stopReason: 'eos', stats: stats(text.length), tokenLogprobs: this.logprobs };
  }
}

const config = (over: Partial<DeerConfig> = {}): (() => DeerConfig) => () => ({ ...DEFAULT_CONFIG, debounceMs: 5, ...over });

test('pipeline: asks the engine with FIM context, stop spec and settings; records stats', async () => {
  const engine = new ScriptedEngine(() => 'a + b;\nfoo();');
  const records: CompletionRecord[] = [];
  const p = new InlinePipeline(engine, config({ inlineMaxNewTokens: 33, blockSize: 7 }), (r) => records.push(r));
  const { doc, offset } = atCursor('function add(a, b) {\n  return █\n}\n');
  const a = await p.suggest({ doc, offset, manual: false, signal: new AbortController().signal });
  assert.equal(a?.text, 'a + b;');
  assert.equal(a?.source, 'model');
  const { request, options } = engine.calls[0];
  assert.equal(request.prefix, 'function add(a, b) {\n  return ');
  assert.equal(request.suffix, '\n}\n');
  assert.equal(request.maxNewTokens, 33);
  assert.equal(request.blockSize, 7);
  assert.equal(request.drafter, 'ngram', 'deer is not in the model: falls back to its default drafter');
  assert.equal(options.lane, 'inline');
  assert.equal(request.stopSpec?.mode, 'single');
  assert.equal(records.length, 1);
});

test('pipeline: typing through the suggestion needs no new request', async () => {
  const engine = new ScriptedEngine(() => 'items.filter((x) => x > 0);');
  const p = new InlinePipeline(engine, config());
  const base = 'const positive = ';
  const sig = new AbortController().signal;
  const first = await p.suggest({ doc: docFromString(base + '\n'), offset: base.length, manual: false, signal: sig });
  assert.equal(first?.text, 'items.filter((x) => x > 0);');
  const typed = 'items.fil';
  const text = base + typed + '\n';
  const next = await p.suggest({ doc: docFromString(text), offset: base.length + typed.length, manual: false, signal: sig });
  assert.equal(next?.text, 'ter((x) => x > 0);');
  assert.equal(next?.source, 'cache');
  assert.equal(engine.calls.length, 1);
});

test('pipeline: cancelled during the debounce → no request', async () => {
  const engine = new ScriptedEngine(() => 'x');
  const p = new InlinePipeline(engine, config({ debounceMs: 200 }));
  const ac = new AbortController();
  const pending = p.suggest({ doc: docFromString('let a = '), offset: 8, manual: false, signal: ac.signal });
  setTimeout(() => ac.abort(), 10);
  assert.equal(await pending, undefined);
  assert.equal(engine.calls.length, 0);
});

test('pipeline: manual trigger skips the debounce and works mid-word', async () => {
  const engine = new ScriptedEngine(() => 'Count = 0;');
  const p = new InlinePipeline(engine, config({ debounceMs: 10_000 }));
  const { doc, offset } = atCursor('let item█s\n');
  const t0 = Date.now();
  const a = await p.suggest({ doc, offset, manual: true, signal: new AbortController().signal });
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(a?.text, 'Count = 0;');
  const auto = await p.suggest({ doc, offset, manual: false, signal: new AbortController().signal });
  assert.equal(auto, undefined, 'automatic trigger inside a word shows nothing');
});

test('pipeline: "nothing" is cached too; binary documents are skipped', async () => {
  const engine = new ScriptedEngine(() => '\n');
  const p = new InlinePipeline(engine, config());
  const sig = new AbortController().signal;
  const a = await p.suggest({ doc: docFromString('x = 1'), offset: 5, manual: false, signal: sig });
  assert.equal(a?.text, '');
  const b = await p.suggest({ doc: docFromString('x = 1'), offset: 5, manual: false, signal: sig });
  assert.equal(b?.source, 'cache');
  assert.equal(engine.calls.length, 1);
  assert.equal(await p.suggest({ doc: docFromString('\u0000\u0001bin'), offset: 2, manual: true, signal: sig }), undefined);
  assert.equal(engine.calls.length, 1);
});

test('pipeline: while debouncing, the context is prefilled (default) or, eagerly, completed', async () => {
  const { doc, offset } = atCursor('const total = █\n');
  const prefill = new ScriptedEngine(() => 'a + b;');
  await new InlinePipeline(prefill, config()).suggest({ doc, offset, manual: false, signal: new AbortController().signal });
  assert.deepEqual(prefill.all.map((c) => [c.options.lane, c.request.maxNewTokens]), [['prefetch', 0], ['inline', 48]]);

  const eager = new ScriptedEngine(() => 'a + b;');
  const p = new InlinePipeline(eager, config({ debounceMs: 100 }), undefined, { whileDebouncing: 'complete' });
  const ac = new AbortController();
  const pending = p.suggest({ doc, offset, manual: false, signal: ac.signal });
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(eager.calls.length, 1, 'eager mode starts the request before the debounce ends');
  ac.abort();
  assert.equal(await pending, undefined, 'a keystroke during the debounce still drops the answer');

  const waiting = new ScriptedEngine(() => 'a + b;');
  await new InlinePipeline(waiting, config(), undefined, { whileDebouncing: 'wait' }).suggest({ doc, offset, manual: false, signal: new AbortController().signal });
  assert.deepEqual(waiting.all.map((c) => c.options.lane), ['inline']);
});

test('pipeline: an automatic suggestion is shown only when confident enough; an explicit one always', async () => {
  const unsure = [Math.log(0.05), Math.log(0.1), Math.log(0.2)]; // geometric mean 0.1
  const engine = new ScriptedEngine(() => 'a * b;', unsure);
  const sig = new AbortController().signal;
  const { doc, offset } = atCursor('function mul(a, b) {\n  return █\n}\n');
  const strict = new InlinePipeline(engine, config({ inlineMinConfidence: 0.15 }));
  const auto = await strict.suggest({ doc, offset, manual: false, signal: sig });
  assert.equal(auto?.text, '');
  assert.ok(Math.abs((auto?.confidence ?? 0) - 0.1) < 1e-9, `confidence ${auto?.confidence}`);
  assert.equal(engine.calls[0].request.logprobs, true, 'the pipeline must ask for token log-probabilities');
  assert.match(describeAnswer(auto!), /^inline single: wrote "a \* b;" \(6 tokens, 3 ms, confidence 0\.10\); not shown: confidence below deer\.inline\.minConfidence \(0\.15\)$/);
  const manual = await strict.suggest({ doc, offset, manual: true, signal: sig });
  assert.equal(manual?.text, 'a * b;', 'Alt+\\ asks again and shows it');
  assert.match(describeAnswer(manual!), /; shown$/);
  const lenient = new InlinePipeline(engine, config({ inlineMinConfidence: 0.05 }));
  assert.equal((await lenient.suggest({ doc, offset, manual: false, signal: sig }))?.text, 'a * b;');
});

test('pipeline: an answer that ends the line at once shows nothing, and the log line says why', async () => {
  const engine = new ScriptedEngine(() => '\n  return a * b;');
  const p = new InlinePipeline(engine, config());
  const { doc, offset } = atCursor('function mul(a, b) {\n  return █\n}\n');
  const a = await p.suggest({ doc, offset, manual: true, signal: new AbortController().signal });
  assert.equal(a?.text, '');
  assert.match(describeAnswer(a!), /^inline single: wrote "\\n  return a \* b;" .*; not shown: empty once cut to the line/);
});

test('pipeline: with an IntelliSense item selected, the suggestion continues the document as if it were accepted', async () => {
  const engine = new ScriptedEngine(() => ' > 0) {');
  const p = new InlinePipeline(engine, config());
  const { doc, offset } = atCursor('function f(items: number[]) {\n  if (items.le█\n}\n');
  const selected = { start: offset - 2, end: offset, text: 'length' };
  const a = await p.suggest({ doc, offset, manual: false, signal: new AbortController().signal, selected });
  assert.equal(engine.calls[0].request.prefix, 'function f(items: number[]) {\n  if (items.length');
  assert.equal(engine.calls[0].request.suffix, '\n}\n');
  assert.equal(a?.text, ' > 0) {');
});

test('pipeline: nothing on an empty document (or only blanks), and the engine is not asked', async () => {
  const engine = new ScriptedEngine(() => 'import os');
  const p = new InlinePipeline(engine, config());
  const sig = new AbortController().signal;
  assert.equal(await p.suggest({ doc: docFromString(''), offset: 0, manual: false, signal: sig }), undefined);
  assert.equal(await p.suggest({ doc: docFromString('\n\n  \n'), offset: 1, manual: true, signal: sig }), undefined);
  assert.equal(engine.calls.length, 0);
});

test('pipeline: a suggestion starting with a blank after a trailing blank joins with one blank', async () => {
  const engine = new ScriptedEngine(() => ' {');
  const p = new InlinePipeline(engine, config());
  const sig = new AbortController().signal;
  const { doc, offset } = atCursor('const total = sum + █\n');
  assert.equal((await p.suggest({ doc, offset, manual: false, signal: sig }))?.text, '{');
  const tight = atCursor('const total = sum +█\n');
  assert.equal((await p.suggest({ doc: tight.doc, offset: tight.offset, manual: false, signal: sig }))?.text, ' {');
});
