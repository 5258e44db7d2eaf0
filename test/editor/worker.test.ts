// The inference process through EngineClient, with the real engine and a small real model
// (test/fixtures/tiny-model from training/, else the engine's random-weight sample model):
// streaming, abort, latest-request-wins, KV-cache reuse across keystrokes, crash → restart,
// invalid folder, and the inline pipeline typing through a real suggestion.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient, type ClientEvent } from '../../src/worker/engineClient';
import { DEFAULT_CONFIG } from '../../src/editor/config';
import { docFromString } from '../../src/editor/context';
import { InlinePipeline } from '../../src/editor/inlineCompletion';
import { decideMode } from '../../src/editor/policy';

const ROOT = join(__dirname, '..', '..', '..');
const WORKER = join(ROOT, 'dist', 'worker.js');
const MODEL = [join(ROOT, 'test', 'fixtures', 'tiny-model'), join(ROOT, 'test', 'fixtures', 'samples', 'conditioned-model')].find((d) =>
  existsSync(join(d, 'config.json')),
);

const PREFIX = 'export function sum(values: number[]): number {\n  let total = 0;\n  for (const v of values) {\n    total += v;\n  }\n  return ';
const SUFFIX = '\n}\n';

let client: EngineClient;
const events: ClientEvent[] = [];

before(async () => {
  assert.ok(MODEL, 'no small model folder found (test/fixtures/tiny-model or test/fixtures/samples/conditioned-model)');
  client = new EngineClient({ workerPath: WORKER });
  client.onEvent((e) => events.push(e));
  const info = await client.load({ modelDir: MODEL, threads: 1 });
  assert.ok(info.vocabSize > 0);
});

after(async () => {
  await client?.dispose();
});

test('worker: completes with a stop rule, streams chunks that add up to the text', async () => {
  assert.equal(client.state, 'ready');
  const chunks: string[] = [];
  const r = await client.complete({ prefix: PREFIX, suffix: SUFFIX, maxNewTokens: 24, drafter: 'ngram' }, { onChunk: (t) => chunks.push(t), lane: 'generate' });
  assert.notEqual(r.stopReason, 'aborted');
  assert.equal(chunks.join(''), r.text);
  assert.ok(r.stats.newTokens > 0);

  const spec = decideMode({ prefix: PREFIX, suffix: SUFFIX, linePrefix: '  return ', lineSuffix: '' });
  assert.ok(spec);
  const single = await client.complete({ prefix: PREFIX, suffix: SUFFIX, maxNewTokens: 24 }, { stopSpec: spec, lane: 'inline' });
  assert.ok(!single.text.includes('\n'), `single-line result has a newline: ${JSON.stringify(single.text)}`);
});

test('worker: KV cache is reused across keystrokes', async () => {
  await client.complete({ prefix: PREFIX, suffix: SUFFIX, maxNewTokens: 4, drafter: 'none' }, { lane: 'inline' });
  const r = await client.complete({ prefix: PREFIX + 'tot', suffix: SUFFIX, maxNewTokens: 4, drafter: 'none' }, { lane: 'inline' });
  assert.ok(r.stats.reusedTokens > r.stats.promptTokens / 2, `reused ${r.stats.reusedTokens} of ${r.stats.promptTokens} prompt tokens`);
});

test('worker: a prefetch fills the KV cache for the next keystroke; any request aborts a prefetch', async () => {
  const other = 'const unrelated = [1, 2, 3];\n'.repeat(5);
  await client.complete({ prefix: other, maxNewTokens: 1, drafter: 'none' }, { lane: 'inline' });
  const p = new InlinePipeline(client, () => ({ ...DEFAULT_CONFIG, debounceMs: 0 }));
  await p.prefetch(docFromString(PREFIX + SUFFIX), PREFIX.length);
  const r = await client.complete({ prefix: PREFIX + 't', suffix: SUFFIX, maxNewTokens: 2, drafter: 'none' }, { lane: 'inline' });
  assert.ok(r.stats.reusedTokens > r.stats.promptTokens / 2, `reused ${r.stats.reusedTokens} of ${r.stats.promptTokens} prompt tokens`);

  await client.complete({ prefix: other, maxNewTokens: 1, drafter: 'none' }, { lane: 'inline' });
  const long = 'let x = 1;\n'.repeat(300);
  const prefetch = client.complete({ prefix: long, maxNewTokens: 0, drafter: 'none' }, { lane: 'prefetch' });
  const real = client.complete({ prefix: PREFIX, maxNewTokens: 2, drafter: 'none' }, { lane: 'inline' });
  // (Aborted mid-prefill it may report 'max_tokens': it had no tokens to generate anyway.)
  assert.equal((await prefetch).text, '');
  assert.notEqual((await real).stopReason, 'aborted', 'a prefetch aborted a real request');
});

test('worker: abort through the signal; the latest inline request wins', async () => {
  const ac = new AbortController();
  const long = client.complete({ prefix: PREFIX, maxNewTokens: 400, drafter: 'none' }, { signal: ac.signal, lane: 'generate' });
  setTimeout(() => ac.abort(), 30);
  assert.equal((await long).stopReason, 'aborted');

  const first = client.complete({ prefix: PREFIX, maxNewTokens: 400, drafter: 'none' }, { lane: 'inline' });
  await new Promise((r) => setTimeout(r, 30));
  const second = client.complete({ prefix: PREFIX + 'total', suffix: SUFFIX, maxNewTokens: 8, drafter: 'none' }, { lane: 'inline' });
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a.stopReason, 'aborted', 'the older inline request was not aborted');
  assert.notEqual(b.stopReason, 'aborted');
  await client.whenIdle();
  assert.equal(client.busy, false);
});

test('worker: the pipeline types through a real suggestion without asking again', async () => {
  let calls = 0;
  const counting = {
    get info() {
      return client.info;
    },
    complete: (...args: Parameters<EngineClient['complete']>) => {
      calls++;
      return client.complete(...args);
    },
  };
  const p = new InlinePipeline(counting, () => ({ ...DEFAULT_CONFIG, debounceMs: 0, drafter: 'ngram' }));
  const sig = new AbortController().signal;
  const base = PREFIX;
  let answer = await p.suggest({ doc: docFromString(base + SUFFIX), offset: base.length, manual: true, signal: sig });
  // A random-weight model may have nothing to say at that spot; find a spot where it does.
  let prefix = base;
  for (const extra of ['t', 'to', 'tot', 'total', 'total +']) {
    if (answer && answer.text.length >= 2) break;
    prefix = base + extra;
    answer = await p.suggest({ doc: docFromString(prefix + SUFFIX), offset: prefix.length, manual: true, signal: sig });
  }
  assert.ok(answer && answer.text.length >= 2, 'the model gave no suggestion to type through');
  const before = calls;
  const typed = prefix + answer.text[0];
  const next = await p.suggest({ doc: docFromString(typed + SUFFIX), offset: typed.length, manual: false, signal: sig });
  assert.equal(next?.source, 'cache');
  assert.equal(next?.text, answer.text.slice(1));
  assert.equal(calls, before, 'typing through asked the engine');
});

test('worker: a crashed inference process is restarted and reported once', async () => {
  const pid = client.pid;
  assert.ok(pid);
  const crashes = events.filter((e) => e.type === 'crash').length;
  process.kill(pid, 'SIGKILL');
  await new Promise<void>((resolve) => {
    const sub = client.onEvent((e) => {
      if (e.type === 'crash') {
        sub.dispose();
        resolve();
      }
    });
  });
  const crash = events.filter((e) => e.type === 'crash');
  assert.equal(crash.length, crashes + 1);
  assert.ok(crash[crash.length - 1].type === 'crash' && crash[crash.length - 1].restarting);
  const r = await client.complete({ prefix: PREFIX, maxNewTokens: 4, drafter: 'none' }, { lane: 'inline' });
  assert.notEqual(r.stopReason, 'aborted');
  assert.notEqual(client.pid, pid);
  assert.equal(client.state, 'ready');
});

test('worker: an invalid model folder is a clear error, and the client reports it', async () => {
  const bad = mkdtempSync(join(tmpdir(), 'deer-bad-model-'));
  writeFileSync(join(bad, 'README.txt'), 'not a model');
  const c = new EngineClient({ workerPath: WORKER });
  try {
    await assert.rejects(c.load({ modelDir: bad }), (err: Error) => {
      assert.equal(err.name, 'ModelFolderError');
      assert.match(err.message, /config\.json|tokenizer|onnx|missing|not found/i);
      return true;
    });
    assert.equal(c.state, 'error');
    await assert.rejects(c.complete({ prefix: 'x', maxNewTokens: 2 }));
  } finally {
    await c.dispose();
    rmSync(bad, { recursive: true, force: true });
  }
});
