// Soak test of inline completion and Generate through exactly what the extension runs (the
// InlinePipeline and the inference process behind EngineClient), with a simulated user: typing
// code from a real file, backspaces, cursor jumps (each one prefetches, as the extension does),
// pauses, accepting the shown suggestion, Generate runs, and inference-process faults injected on
// purpose, in turn: SIGSTOP (a wedged process: the client's liveness check must find it, kill it
// and restart it) and SIGKILL (a crash). Every keystroke cancels the request before it, as VS Code
// does.
//
// It asserts, and exits 1 otherwise: 0 unhandled rejections; 0 errors other than those of the
// injected faults; every fault detected and recovered from (a model answer after the restart); 0 stale results (an answer delivered after its request was cancelled); 0
// document changes without an accept (Generate text arriving after Generate ended, or a document
// that differs from the edits the user made); worker and soak-process RSS growth under 64 MB after
// warm-up. It reports p50/p95 latency (last keystroke to answer, debounce included) and writes
// bench/soak.json and bench/soak.md.
//
//   node dist/bench-soak.js [--keystrokes N] [--model DIR] [--out bench/soak] [--fault-every N] [--seed N]
// (`npm run soak`: 10,000 keystrokes, about 10 minutes; `npm run test:soak`: 300, in `npm test`.)
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { DEFAULT_CONFIG, type DeerConfig } from '../editor/config';
import { docFromString } from '../editor/context';
import { InlinePipeline, sleep, type InlineAnswer } from '../editor/inlineCompletion';
import { CLIENT_DEFAULTS, EngineClient } from '../worker/engineClient';
import { DEFAULT_MODEL, percentile, ROOT, runScript, scriptOptions, writeReport } from './common';

const { KEYSTROKES, MODEL, OUT, FAULT_EVERY, SEED } = scriptOptions(process.argv.slice(2), [], (o) => {
  const keystrokes = o.num('keystrokes', 10000);
  return {
    KEYSTROKES: keystrokes,
    MODEL: o.str('model', DEFAULT_MODEL),
    OUT: o.str('out', join(ROOT, 'bench', 'soak')),
    /**
     * A fault every this many keystrokes (SIGSTOP and SIGKILL in turn), none in the last
     * FAULT_FREE_TAIL of the run (its recovery must be seen), and never more than the client
     * restarts from in its crash window (it gives up after maxCrashes crashes within
     * crashWindowMs: that is not the test).
     */
    FAULT_EVERY: o.num('fault-every', Math.max(250, Math.floor(keystrokes / 6))),
    SEED: o.num('seed', 20261201),
  };
});
const FAULT_FREE_TAIL = 0.15;
/** After a fault's crash, errors of requests already in flight or sent before the restart are the injected ones. */
const FAULT_GRACE_MS = 500;
const RSS_LIMIT_MB = 64;
/** Longer than any restart the client's limits allow (liveness, then a model load). */
const PROBE_TIMEOUT_MS = CLIENT_DEFAULTS.livenessMs + CLIENT_DEFAULTS.loadLivenessMs;
/** Growth is measured from this share of the run on (model and caches warmed up). */
const WARMUP_SHARE = 0.1;
const MB = 2 ** 20;

let seed = SEED;
const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
const randInt = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

/** The document as the user edits it; the pipeline only ever sees read-only snapshots of it. */
class SimDoc {
  version = 0;

  constructor(
    public text: string,
    public cursor: number,
  ) {}

  /** The only way the document changes: typing, backspace, an accept, Generate's stream. */
  edit(at: number, remove: number, insert: string): void {
    this.text = this.text.slice(0, at) + insert + this.text.slice(at + remove);
    this.cursor = at + insert.length;
    this.version++;
  }
}

interface Counters {
  keystrokes: number;
  typed: number;
  backspaces: number;
  jumps: number;
  pauses: number;
  accepts: number;
  generates: number;
  kills: number;
  stops: number;
  suggestions: number;
  modelAnswers: number;
  cacheAnswers: number;
  shown: number;
  cancelled: number;
  /** Answered with nothing to show (say, mid-word), not cancelled. */
  nothingHere: number;
  injectedErrors: number;
  errors: number;
  unhandledRejections: number;
  staleResults: number;
  changesWithoutAccept: number;
}

/** `work`, or a rejection after PROBE_TIMEOUT_MS: a wedged process the client fails to find must fail the soak, not hang it. */
async function bounded<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([work, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} after ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function main(): Promise<void> {
  const sources = ['src/editor/policy.ts', 'src/engine/speculative.ts', 'training/model.py', 'src/editor/context.ts']
    .map((f) => join(ROOT, f))
    .filter((f) => existsSync(f))
    .map((f) => readFileSync(f, 'utf8'));
  if (sources.length < 2) throw new Error('soak: the source files it types from are missing');
  const c: Counters = {
    keystrokes: 0, typed: 0, backspaces: 0, jumps: 0, pauses: 0, accepts: 0, generates: 0, kills: 0, stops: 0, suggestions: 0,
    modelAnswers: 0, cacheAnswers: 0, shown: 0, cancelled: 0, nothingHere: 0, injectedErrors: 0, errors: 0, unhandledRejections: 0,
    staleResults: 0, changesWithoutAccept: 0,
  };
  const errorSamples: string[] = [];
  process.on('unhandledRejection', (reason) => {
    c.unhandledRejections++;
    if (errorSamples.length < 10) errorSamples.push(`unhandled rejection: ${String(reason)}`);
  });

  const client = new EngineClient({ workerPath: join(ROOT, 'dist', 'worker.js') });
  const t0 = performance.now();
  const config: DeerConfig = { ...DEFAULT_CONFIG };
  await client.load({ modelDir: MODEL }, config.drafter);
  const loadMs = Math.round(performance.now() - t0);
  const pipeline = new InlinePipeline(client, () => config);

  /** The end of a random line: where code is typed (a cursor mid-word gets no suggestion). */
  const lineEnd = (text: string): number => {
    const nl = text.indexOf('\n', randInt(0, text.length));
    return nl < 0 ? text.length : nl;
  };
  const doc = new SimDoc(sources[0], 0);
  doc.cursor = lineEnd(doc.text);
  let script = sources[1];
  let scriptAt = 0;
  /**
   * Each injected fault: when, when the client reported the crash it became (a SIGSTOP: when the
   * liveness check found it), and whether a request sent after that crash was answered (by the
   * restarted process: a suggestion, empty or not, a Generate run or a memory probe).
   */
  const faults: { kind: 'SIGSTOP' | 'SIGKILL'; keystroke: number; at: number; crashAt?: number; crashMessage?: string; answeredAfter: boolean }[] = [];
  const answered = (sentAt: number): void => {
    for (const f of faults) if (f.crashAt !== undefined && sentAt > f.crashAt) f.answeredAfter = true;
  };
  let lastCrashMs = -Infinity;
  client.onEvent((e) => {
    if (e.type !== 'crash') return;
    lastCrashMs = performance.now();
    const fault = faults.find((f) => f.crashAt === undefined);
    if (fault) {
      fault.crashAt = lastCrashMs;
      fault.crashMessage = e.message;
    } else {
      c.errors++;
      if (errorSamples.length < 10) errorSamples.push(`crash not injected: ${e.message}`);
    }
  });
  const latencies: number[] = [];
  let inflight: { controller: AbortController; version: number } | undefined;
  let shown: { version: number; text: string } | undefined;
  const pendingWork = new Set<Promise<void>>();
  const workerRss: { at: number; pid: number; mb: number }[] = [];
  const selfRss: { at: number; mb: number }[] = [];

  // A fault's errors: from the fault until its crash is reported (a stopped process answers nothing
  // until the liveness check kills it), then until the restarted process is ready, plus a grace.
  const injected = (): boolean =>
    faults.some((f) => f.crashAt === undefined) || performance.now() - lastCrashMs < FAULT_GRACE_MS || client.state !== 'ready';
  const failed = (err: unknown, what: string): void => {
    if (err instanceof Error && (err.name === 'WorkerCrashedError' || err.name === 'EngineTimeoutError') && injected()) {
      c.injectedErrors++;
      return;
    }
    c.errors++;
    if (errorSamples.length < 10) errorSamples.push(`${what}: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  };

  /** A keystroke's suggestion request, as the provider makes it (not awaited: the next keystroke cancels it). */
  const suggest = (manual: boolean): void => {
    inflight?.controller.abort();
    if (client.state !== 'ready') return;
    const controller = new AbortController();
    const version = doc.version;
    inflight = { controller, version };
    const started = performance.now();
    c.suggestions++;
    const work = pipeline
      .suggest({ doc: docFromString(doc.text), offset: doc.cursor, manual, signal: controller.signal })
      .then((answer: InlineAnswer | undefined) => {
        if (!answer) {
          if (controller.signal.aborted) c.cancelled++;
          else {
            c.nothingHere++;
            answered(started);
          }
          return;
        }
        answered(started);
        // The provider shows an answer only for the document it was asked about.
        if (controller.signal.aborted || doc.version !== version) {
          c.staleResults++;
          if (errorSamples.length < 10) errorSamples.push(`stale: answer for version ${version} at version ${doc.version}`);
          return;
        }
        if (answer.source === 'cache') c.cacheAnswers++;
        else {
          c.modelAnswers++;
          latencies.push(performance.now() - started);
        }
        if (answer.text !== '') {
          c.shown++;
          shown = { version, text: answer.text };
        }
      })
      .catch((err) => failed(err, 'suggest'));
    pendingWork.add(work);
    void work.finally(() => pendingWork.delete(work));
  };

  /** DEER: Generate at the cursor, streaming into the document; nothing may arrive after it ends. */
  const generate = async (): Promise<void> => {
    inflight?.controller.abort();
    if (client.state !== 'ready') return;
    c.generates++;
    const at = doc.cursor;
    const ac = new AbortController();
    let written = 0;
    let ended = false;
    if (rand() < 0.3) setTimeout(() => ac.abort(), randInt(20, 300));
    const sentAt = performance.now();
    try {
      const r = await client.complete(
        { prefix: doc.text.slice(Math.max(0, at - 3000), at), suffix: doc.text.slice(at, at + 1000), maxNewTokens: 48, drafter: config.drafter },
        {
          lane: 'generate',
          signal: ac.signal,
          onChunk: (t) => {
            if (ended) {
              c.changesWithoutAccept++;
              return;
            }
            doc.edit(at + written, 0, t);
            written += t.length;
          },
        },
      );
      if (r.stopReason !== 'aborted') answered(sentAt);
    } catch (err) {
      failed(err, 'generate');
    } finally {
      ended = true;
    }
  };

  /** Injects the next fault; false when it must wait (the process is not up, or the crash window is full). */
  const inject = (keystroke: number): boolean => {
    const pid = client.pid;
    if (!pid || client.state !== 'ready' || faults.some((f) => f.crashAt === undefined)) return false;
    const now = performance.now();
    if (faults.filter((f) => now - f.at < CLIENT_DEFAULTS.crashWindowMs).length >= CLIENT_DEFAULTS.maxCrashes) return false;
    const kind = faults.length % 2 === 0 ? 'SIGSTOP' : 'SIGKILL';
    if (kind === 'SIGSTOP') c.stops++;
    else c.kills++;
    faults.push({ kind, keystroke, at: now, answeredAfter: false });
    process.kill(pid, kind);
    return true;
  };

  const sample = async (at: number): Promise<void> => {
    selfRss.push({ at, mb: process.memoryUsage().rss / MB });
    if (client.state !== 'ready') return;
    const sentAt = performance.now();
    try {
      const bytes = await bounded(client.memory(), 'memory probe unanswered');
      workerRss.push({ at, pid: client.pid ?? 0, mb: bytes / MB });
      answered(sentAt);
    } catch (err) {
      failed(err, 'memory probe'); // killed meanwhile: injected
    }
  };

  const started = performance.now();
  let faultDue = false;
  for (let i = 1; i <= KEYSTROKES; i++) {
    c.keystrokes++;
    const r = rand();
    const visible = shown !== undefined && shown.version === doc.version ? shown.text : '';
    if (i % FAULT_EVERY === 0) faultDue = true;
    if (faultDue && i <= KEYSTROKES * (1 - FAULT_FREE_TAIL) && inject(i)) faultDue = false;
    if (visible !== '' && r < 0.3) {
      // Accept the suggestion on screen (Tab).
      doc.edit(doc.cursor, 0, visible);
      c.accepts++;
      shown = undefined;
      suggest(false);
    } else if (visible !== '' && r < 0.6) {
      // Type through it: the next character is the one suggested (the cache answers).
      doc.edit(doc.cursor, 0, visible[0]);
      c.typed++;
      shown = visible.length > 1 ? { version: doc.version, text: visible.slice(1) } : undefined;
      suggest(false);
    } else if (r < 0.8) {
      // Type the next character of the script (another real file), as a user would.
      if (scriptAt >= script.length) {
        script = sources[randInt(0, sources.length - 1)];
        scriptAt = 0;
      }
      doc.edit(doc.cursor, 0, script[scriptAt++]);
      c.typed++;
      suggest(false);
    } else if (r < 0.87) {
      if (doc.cursor > 0) doc.edit(doc.cursor - 1, 1, '');
      c.backspaces++;
      suggest(false);
    } else if (r < 0.92) {
      inflight?.controller.abort();
      doc.cursor = rand() < 0.8 ? lineEnd(doc.text) : randInt(0, doc.text.length);
      c.jumps++;
      const ac = new AbortController();
      inflight = { controller: ac, version: doc.version };
      const work = pipeline.prefetch(docFromString(doc.text), doc.cursor, ac.signal).catch((err) => failed(err, 'prefetch'));
      pendingWork.add(work);
      void work.finally(() => pendingWork.delete(work));
    } else if (r < 0.965) {
      // Alt+\: ask at once.
      suggest(true);
    } else if (r < 0.995) {
      c.pauses++;
      suggest(false);
      await sleep(randInt(300, 900));
    } else {
      await generate();
    }
    // While a fault's restart reloads the model the user types slower, so a short run still sees
    // the restarted process at work (and the next fault) instead of spending its keystrokes on nothing.
    await sleep(randInt(5, 60) + (client.state === 'loading' ? 200 : 0));
    if (i % 250 === 0) await sample(i);
  }
  inflight?.controller.abort();
  await Promise.allSettled([...pendingWork]);
  await bounded(client.whenIdle(), 'the client never became idle').catch((err) => failed(err, 'end of run'));
  // A restart near the end may still be loading: wait for it (bounded) so the last sample probes it.
  for (const t = performance.now(); client.state === 'loading' && performance.now() - t < CLIENT_DEFAULTS.loadLivenessMs; ) await sleep(100);
  await sample(KEYSTROKES);
  const runMs = performance.now() - started;
  await client.dispose();

  // Growth after warm-up, per inference process (a killed one is replaced by a fresh one).
  const warm = KEYSTROKES * WARMUP_SHARE;
  const growth = (xs: { at: number; mb: number }[]): number => {
    const after = xs.filter((x) => x.at >= warm);
    return after.length < 2 ? 0 : Math.max(...after.map((x) => x.mb)) - after[0].mb;
  };
  const byPid = new Map<number, { at: number; mb: number }[]>();
  for (const s of workerRss) byPid.set(s.pid, [...(byPid.get(s.pid) ?? []), s]);
  const workerGrowth = Math.max(0, ...[...byPid.values()].map(growth));
  const selfGrowth = growth(selfRss);
  const pct = (p: number): number | null => {
    const v = percentile(latencies, p);
    return v === null ? null : Math.round(v);
  };

  const checks = {
    unhandledRejections: c.unhandledRejections === 0,
    errorsOtherThanInjected: c.errors === 0,
    staleResults: c.staleResults === 0,
    changesWithoutAccept: c.changesWithoutAccept === 0,
    workerRssGrowth: workerGrowth < RSS_LIMIT_MB,
    soakRssGrowth: selfGrowth < RSS_LIMIT_MB,
    faultsDetected: faults.every((f) => f.crashAt !== undefined),
    faultsRecovered: faults.every((f) => f.answeredAfter),
  };
  const detectionMs = (kind: string) => faults.filter((f) => f.kind === kind && f.crashAt !== undefined).map((f) => Math.round(f.crashAt! - f.at));
  const result = {
    date: new Date().toISOString(),
    model: relative(ROOT, MODEL) || MODEL,
    drafter: config.drafter,
    machine: { cpus: cpus().length, loadavg: loadavg().map((x) => Math.round(x * 100) / 100) },
    keystrokes: KEYSTROKES,
    faultEvery: FAULT_EVERY,
    faults: faults.map((f) => ({ kind: f.kind, keystroke: f.keystroke, crashAfterMs: f.crashAt === undefined ? null : Math.round(f.crashAt - f.at), crash: f.crashMessage ?? null, answeredAfter: f.answeredAfter })),
    detectionMs: { SIGSTOP: detectionMs('SIGSTOP'), SIGKILL: detectionMs('SIGKILL'), livenessMs: CLIENT_DEFAULTS.livenessMs, abortAckMs: CLIENT_DEFAULTS.abortAckMs },
    loadMs,
    runSeconds: Math.round(runMs / 100) / 10,
    counters: c,
    latencyMs: { p50: pct(50), p95: pct(95), n: latencies.length },
    rssMB: {
      limit: RSS_LIMIT_MB,
      workerGrowthAfterWarmup: Math.round(workerGrowth),
      soakGrowthAfterWarmup: Math.round(selfGrowth),
      workerFirst: workerRss[0] ? Math.round(workerRss[0].mb) : null,
      workerLast: workerRss.length ? Math.round(workerRss[workerRss.length - 1].mb) : null,
    },
    checks,
    errorSamples,
    passed: Object.values(checks).every(Boolean),
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeReport(OUT, result, markdown(result));
  process.exitCode = result.passed ? 0 : 1;
}

function markdown(r: {
  date: string; model: string; drafter: string; keystrokes: number; runSeconds: number; loadMs: number;
  counters: Counters; detectionMs: { SIGSTOP: number[]; SIGKILL: number[]; livenessMs: number; abortAckMs: number }; latencyMs: { p50: number | null; p95: number | null; n: number };
  rssMB: { limit: number; workerGrowthAfterWarmup: number; soakGrowthAfterWarmup: number; workerFirst: number | null; workerLast: number | null };
  checks: Record<string, boolean>; errorSamples: string[]; passed: boolean;
}): string {
  const k = r.counters;
  const rows: [string, string | number][] = [
    ['keystrokes', r.keystrokes],
    ['typed / backspaces / cursor jumps / pauses', `${k.typed} / ${k.backspaces} / ${k.jumps} / ${k.pauses}`],
    ['accepted suggestions / Generate runs', `${k.accepts} / ${k.generates}`],
    ['injected faults: SIGSTOP / SIGKILL (errors they caused)', `${k.stops} / ${k.kills} (${k.injectedErrors})`],
    [
      `SIGSTOP found by the liveness check after (ms; silence limit ${r.detectionMs.livenessMs}, abort answer ${r.detectionMs.abortAckMs})`,
      r.detectionMs.SIGSTOP.join(', ') || '-',
    ],
    ['SIGKILL seen as a crash after (ms)', r.detectionMs.SIGKILL.join(', ') || '-'],
    ['suggestion requests: model / cache / nothing to show / cancelled', `${k.modelAnswers} / ${k.cacheAnswers} / ${k.nothingHere} / ${k.cancelled}`],
    ['suggestions shown', k.shown],
    ['latency p50 / p95 (ms, last keystroke to answer, debounce included)', `${r.latencyMs.p50} / ${r.latencyMs.p95} (n=${r.latencyMs.n})`],
    ['unhandled rejections', k.unhandledRejections],
    ['errors other than the injected ones', k.errors],
    ['stale results', k.staleResults],
    ['document changes without an accept', k.changesWithoutAccept],
    [`worker RSS growth after warm-up (MB, limit ${r.rssMB.limit})`, `${r.rssMB.workerGrowthAfterWarmup} (first ${r.rssMB.workerFirst}, last ${r.rssMB.workerLast})`],
    [`soak process RSS growth after warm-up (MB, limit ${r.rssMB.limit})`, r.rssMB.soakGrowthAfterWarmup],
  ];
  const failed = Object.entries(r.checks).filter(([, ok]) => !ok).map(([name]) => name);
  return [
    `# Soak: ${r.keystrokes} keystrokes (${r.date.slice(0, 10)})`,
    '',
    `Model ${r.model}, drafter ${r.drafter}; load ${r.loadMs} ms; ${r.runSeconds} s of simulated typing. \`npm run soak\` (src/cli/soak.ts).`,
    '',
    '| | |',
    '|---|---|',
    ...rows.map(([a, b]) => `| ${a} | ${b} |`),
    '',
    r.passed ? 'All checks passed.' : `FAILED: ${failed.join(', ')}`,
    ...(r.errorSamples.length ? ['', 'First problems:', ...r.errorSamples.map((e) => `- ${e}`)] : []),
    '',
  ].join('\n');
}

runScript('soak', main);
