// The inference process through EngineClient, with the real engine and a small real model
// (test/fixtures/tiny-model from training/, else the engine's random-weight sample model):
// streaming, abort, latest-request-wins, KV-cache reuse across keystrokes, crash → restart,
// invalid folder, and the inline pipeline typing through a real suggestion.
import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EngineClient, EngineTimeoutError, plainLogLine, WorkerCrashedError, type ClientEvent } from '../../src/worker/engineClient';
import { DEFAULT_CONFIG } from '../../src/editor/config';
import { docFromString } from '../../src/editor/context';
import { InlinePipeline } from '../../src/editor/inlineCompletion';
import { decideMode } from '../../src/editor/policy';
import { statusView, uiState } from '../../src/editor/stats';

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
  const single = await client.complete({ prefix: PREFIX, suffix: SUFFIX, maxNewTokens: 24, stopSpec: spec }, { lane: 'inline' });
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
  // Early: the embedded model may end a completion on its own (a repetition stop) within 30 ms on a fast CPU.
  setTimeout(() => ac.abort(), 2);
  assert.equal((await long).stopReason, 'aborted');

  const first = client.complete({ prefix: PREFIX, maxNewTokens: 400, drafter: 'none' }, { lane: 'inline' });
  await new Promise((r) => setTimeout(r, 2));
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

test('pipeline on the real engine: each suggestion is scored from its token log-probabilities; automatic ones below the threshold are not shown', async () => {
  const sig = new AbortController().signal;
  const doc = docFromString(PREFIX + SUFFIX);
  const shown = new InlinePipeline(client, () => ({ ...DEFAULT_CONFIG, debounceMs: 0, inlineMinConfidence: 0 }));
  const a = await shown.suggest({ doc, offset: PREFIX.length, manual: false, signal: sig });
  assert.ok(a?.result?.tokenLogprobs && a.result.tokenLogprobs.length === a.result.tokens.length, 'no log-probabilities from the worker');
  assert.ok(a.confidence !== undefined && a.confidence > 0 && a.confidence <= 1, `confidence ${a.confidence}`);
  const strict = new InlinePipeline(client, () => ({ ...DEFAULT_CONFIG, debounceMs: 0, inlineMinConfidence: Math.min(1, a.confidence! + 1e-6) }));
  const hidden = await strict.suggest({ doc, offset: PREFIX.length, manual: false, signal: sig });
  assert.equal(hidden?.text, '', 'a suggestion below the threshold was shown');
  const asked = await strict.suggest({ doc, offset: PREFIX.length, manual: true, signal: sig });
  assert.equal(asked?.text, a.text, 'Alt+\\ (manual) must show it whatever its confidence');
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

/** Resolves with how long `p` took to settle, or rejects when it takes longer than `ms`. */
async function within<T>(ms: number, p: Promise<T>, what: string): Promise<{ value?: T; error?: Error; ms: number }> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms)));
  try {
    const value = await Promise.race([p, limit]);
    return { value, ms: Date.now() - t0 };
  } catch (error) {
    if ((error as Error).message.startsWith(`${what}: still pending`)) throw error;
    return { error: error as Error, ms: Date.now() - t0 };
  } finally {
    clearTimeout(timer);
  }
}

test('worker: a stopped (SIGSTOP) inference process is detected, killed and restarted; whenIdle returns', async () => {
  const c = new EngineClient({ workerPath: WORKER, pingMs: 100, livenessMs: 800, abortAckMs: 400 });
  const crashes: string[] = [];
  c.onEvent((e) => e.type === 'crash' && crashes.push(e.message));
  try {
    await c.load({ modelDir: MODEL!, threads: 1 });
    // A request in flight, then the process stops: the liveness check rejects it by name.
    const pid = c.pid!;
    const running = c.complete({ prefix: PREFIX, maxNewTokens: 400, drafter: 'none' }, { lane: 'generate' });
    process.kill(pid, 'SIGSTOP');
    const r = await within(5000, running, 'request to a stopped process');
    assert.ok(r.error instanceof WorkerCrashedError, `expected WorkerCrashedError, got ${r.error ?? 'a result'}`);
    assert.match(r.error.message, /not responded/);
    await within(15000, c.whenIdle(), 'whenIdle after the restart');
    assert.equal(c.state, 'ready');
    assert.notEqual(c.pid, pid);
    assert.equal(crashes.length, 1);

    // An abort the stopped process cannot acknowledge: the request ends as aborted, the process is replaced.
    const pid2 = c.pid!;
    const ac = new AbortController();
    const aborted = c.complete({ prefix: PREFIX, maxNewTokens: 400, drafter: 'none' }, { lane: 'generate', signal: ac.signal });
    await new Promise((res) => setTimeout(res, 20));
    process.kill(pid2, 'SIGSTOP');
    ac.abort();
    const a = await within(5000, aborted, 'aborted request to a stopped process');
    assert.equal(a.value?.stopReason, 'aborted');
    assert.ok(a.ms < 800, `the abort took ${a.ms} ms: the abort deadline, not the liveness check, should end it`);
    await within(15000, c.whenIdle(), 'whenIdle after the second restart');
    assert.notEqual(c.pid, pid2);
    assert.match(crashes[1], /did not stop a request/);
    const ok = await c.complete({ prefix: PREFIX, maxNewTokens: 4, drafter: 'none' }, { lane: 'inline' });
    assert.notEqual(ok.stopReason, 'aborted');
  } finally {
    await c.dispose();
  }
});

test('worker: a request past its deadline rejects with EngineTimeoutError; the process goes on', async () => {
  const pid = client.pid;
  const r = await within(5000, client.complete({ prefix: PREFIX, maxNewTokens: 4000, drafter: 'none' }, { lane: 'generate', deadlineMs: 1 }), 'a request with a 1 ms deadline');
  assert.ok(r.error instanceof EngineTimeoutError, `expected EngineTimeoutError, got ${r.error ?? 'a result'}`);
  await within(5000, client.whenIdle(), 'whenIdle after the deadline');
  assert.equal(client.pid, pid, 'the process answered the abort: no restart');
  const ok = await client.complete({ prefix: PREFIX, maxNewTokens: 4, drafter: 'none' }, { lane: 'inline' });
  assert.notEqual(ok.stopReason, 'aborted');
});

test('worker: after the last allowed crash the client gives up and whenIdle still returns', async () => {
  const c = new EngineClient({ workerPath: WORKER, pingMs: 100, livenessMs: 500, maxCrashes: 0 });
  try {
    await c.load({ modelDir: MODEL!, threads: 1 });
    const running = c.complete({ prefix: PREFIX, maxNewTokens: 400, drafter: 'none' }, { lane: 'generate' });
    process.kill(c.pid!, 'SIGSTOP');
    assert.ok((await within(5000, running, 'request')).error instanceof WorkerCrashedError);
    await within(5000, c.whenIdle(), 'whenIdle after giving up');
    assert.equal(c.state, 'error');
    assert.equal(c.busy, false);
  } finally {
    await c.dispose();
  }
});

test('worker: onnxruntime log lines reach the log as plain text', async () => {
  const raw = "\x1b[0;93m2026-12-01 17:11:30.296184031 [W:onnxruntime:, graph.cc:5607 CleanUnusedInitializersAndNodeArgs] Removing initializer 'z2'.\x1b[m";
  assert.equal(plainLogLine(raw), "onnxruntime warning: Removing initializer 'z2'. (graph.cc:5607 CleanUnusedInitializersAndNodeArgs)");
  assert.equal(plainLogLine('\x1b[1;31mplain\x1b[m\r'), 'plain');

  // A drafter whose trial pass fails at load: onnxruntime logs the failing node itself.
  const dir = mkdtempSync(join(tmpdir(), 'deer-ortlog-'));
  cpSync(join(ROOT, 'test', 'fixtures', 'samples', 'conditioned-model'), dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, 'deer.json'), 'utf8'));
  manifest.drafters.deer.context_window = 600;
  writeFileSync(join(dir, 'deer.json'), JSON.stringify(manifest));
  const c = new EngineClient({ workerPath: WORKER });
  const lines: string[] = [];
  c.onEvent((e) => e.type === 'log' && lines.push(e.line));
  try {
    await assert.rejects(c.load({ modelDir: dir, threads: 1 }), (e: Error) => e.name === 'ModelFolderError' && /drafter\.onnx/.test(e.message));
    await new Promise((res) => setTimeout(res, 200)); // stderr may trail the IPC message
    const ort = lines.filter((l) => /onnxruntime/.test(l));
    assert.ok(ort.length > 0, `no onnxruntime line in the log: ${JSON.stringify(lines)}`);
    for (const l of lines) assert.ok(!l.includes('\x1b'), `colour codes in the log: ${JSON.stringify(l)}`);
    assert.ok(ort.some((l) => l.startsWith('onnxruntime error: ')), JSON.stringify(ort));
  } finally {
    await c.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
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

test('status bar: "loading the model" only until the model is loaded, whatever happens after', async () => {
  const c = new EngineClient({ workerPath: WORKER });
  const view = () => statusView({ state: uiState(c.state, true), model: c.info?.name, drafter: 'deer', records: [] });
  const seen: { client: string; text: string; tooltip: string }[] = [];
  c.onEvent((e) => e.type === 'state' && seen.push({ client: e.state, ...view() }));
  try {
    assert.match(view().tooltip, /loading the model/, 'before the load starts (it starts at activation)');
    const loading = c.load({ modelDir: MODEL!, threads: 1 });
    assert.match(view().tooltip, /loading the model/);
    await loading;
    const afterLoad = () => {
      const v = view();
      assert.equal(v.state, 'ready');
      assert.doesNotMatch(v.text + v.tooltip, /loading/i);
    };
    afterLoad();
    await c.complete({ prefix: PREFIX, suffix: SUFFIX, maxNewTokens: 4 }, { lane: 'inline' });
    afterLoad();
    const ready = seen.findIndex((s) => s.client === 'ready');
    assert.ok(ready >= 0, `no ready event: ${JSON.stringify(seen.map((s) => s.client))}`);
    for (const s of seen.slice(ready)) assert.doesNotMatch(s.text + s.tooltip, /loading/i, `after ready, at ${s.client}`);
    // Toggle off: the item says so and how to turn it back on
    const off = statusView({ state: uiState(c.state, false), drafter: 'deer', records: [] });
    assert.equal(off.state, 'disabled');
    assert.match(off.tooltip, /inline completion is off \(DEER: Toggle Inline Completion\)/);
  } finally {
    await c.dispose();
  }
});
