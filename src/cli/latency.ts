// Latency benchmark of inline completion, outside VS Code but through exactly what the extension
// runs: the inference process (EngineClient → dist/worker.js) and the InlinePipeline (context,
// policy, cache/type-through, debounce, postprocess). It simulates a user:
//   cold: a file was just opened (no suggestion cache; the engine's KV cache holds another file),
//         one keystroke at once, then the wait for the suggestion;
//   opened: the same, but the keystroke comes 1 s after opening, after the extension's prefetch
//         of the context at the cursor;
//   warm: typing a line in bursts of 2-5 keystrokes (each one cancels the request before it, as
//         VS Code does), then a pause: the wait after the burst's last keystroke.
// single-line: cursor in a statement line; multi-line: right after a line that opens a block.
// Reports ms from the last keystroke to the answer (debounce included), p50/p95, and the inference
// process's resident memory. Writes bench/latency.json and bench/latency.md.
//
//   node dist/bench-latency.js [--model DIR] [--files a.ts,b.py] [--per-file N] [--out bench/latency]
//                              [--drafter D] [--no-lookup] [--no-trees] [--threads N] [--spin|--no-spin] [--while-debouncing wait|prefill|complete]
// Without options it measures what the extension does by default (DEFAULT_CONFIG: deer with prompt lookup and draft trees).
import { readFileSync, mkdirSync, existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { DEFAULT_CONFIG, type DeerConfig } from '../editor/config';
import { docFromString } from '../editor/context';
import { InlinePipeline, sleep, type InlineAnswer } from '../editor/inlineCompletion';
import { opensBlock } from '../editor/policy';
import { EngineClient } from '../worker/engineClient';
import { DEFAULT_MODEL, drafterName, percentile, ROOT, runScript, scriptOptions, seededRandom, spinningOption, writeReport } from './common';

const DEFAULT_FILES = ['src/editor/policy.ts', 'src/editor/cache.ts', 'src/engine/speculative.ts', 'src/engine/tokenizer.ts', 'training/model.py', 'training/tokenizer.py'];
const { MODEL, OUT, PER_FILE, DRAFTER, THREADS, SPINNING, LOOKUP, TREES, WHILE_DEBOUNCING, FILES } = scriptOptions(process.argv.slice(2), ['no-lookup', 'no-trees', 'spin', 'no-spin'], (o) => ({
  MODEL: o.str('model', DEFAULT_MODEL),
  OUT: o.str('out', join(ROOT, 'bench', 'latency')),
  PER_FILE: o.num('per-file', 4),
  DRAFTER: drafterName(o.str('drafter', DEFAULT_CONFIG.drafter)),
  THREADS: o.num('threads', 0),
  SPINNING: spinningOption(o),
  LOOKUP: DEFAULT_CONFIG.promptLookup && !o.flag('no-lookup'),
  TREES: DEFAULT_CONFIG.draftTrees && !o.flag('no-trees'),
  WHILE_DEBOUNCING: o.str('while-debouncing', 'prefill') as 'wait' | 'prefill' | 'complete',
  FILES: o
    .str('files', DEFAULT_FILES.map((f) => join(ROOT, f)).join(','))
    .split(',')
    .filter((f) => existsSync(f)),
}));

/** Deterministic choices. */
const rand = seededRandom(12345);
const randInt = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));

type Kind = 'single' | 'multi';
type Phase = 'cold' | 'opened' | 'warm';
const PHASES: Phase[] = ['cold', 'opened', 'warm'];
interface Sample {
  file: string;
  kind: Kind;
  phase: Phase;
  ms: number;
  source: 'model' | 'cache';
  shown: boolean;
  /** Engine figures of a model answer. */
  promptTokens?: number;
  reusedTokens?: number;
  newTokens?: number;
  prefillMs?: number;
  decodeMs?: number;
  meanAccepted?: number;
}

interface Spot {
  /** Offset of the line start and the line's text. */
  lineStart: number;
  line: string;
  kind: Kind;
}

function spots(text: string): Spot[] {
  const out: Spot[] = [];
  let start = 0;
  for (const line of text.split('\n')) {
    const t = line.trim();
    const code = t.length > 0 && !/^(\/\/|#|\*|\/\*)/.test(t);
    if (code && t.length >= 12 && line.length <= 100) {
      if (opensBlock(line) && /[{:]\s*$/.test(line)) out.push({ lineStart: start, line, kind: 'multi' });
      else if (/[;)\]]$|[\w)]$/.test(t) && !t.startsWith('import') && !t.startsWith('from')) out.push({ lineStart: start, line, kind: 'single' });
    }
    start += line.length + 1;
  }
  return out;
}

function pick<T>(xs: T[], n: number): T[] {
  const copy = [...xs];
  const out: T[] = [];
  while (out.length < n && copy.length > 0) out.push(copy.splice(randInt(0, copy.length - 1), 1)[0]);
  return out;
}

async function main(): Promise<void> {
  if (!existsSync(join(MODEL, 'config.json'))) throw new Error(`no model folder at ${MODEL} (use --model DIR)`);
  const config: DeerConfig = { ...DEFAULT_CONFIG, drafter: DRAFTER, promptLookup: LOOKUP, draftTrees: TREES };
  const client = new EngineClient({ workerPath: join(ROOT, 'dist', 'worker.js') });
  const t0 = performance.now();
  const info = await client.load({ modelDir: MODEL, threads: THREADS > 0 ? THREADS : undefined, spinning: SPINNING }, config.drafter);
  const threads = `${info.threads ?? THREADS}${info.spinning ? ', spinning' : ', not spinning'}`;
  const loadMs = performance.now() - t0;
  const rssAfterLoad = await client.memory();
  let rssPeak = rssAfterLoad;
  console.log(`model ${info.name} (${info.drafters.join(', ')}) loaded in ${Math.round(loadMs)} ms; worker RSS ${mb(rssAfterLoad)} MB`);

  const samples: Sample[] = [];
  let aborted = 0;
  /** A new suggestion cache (a fresh editor session). */
  const fresh = (): InlinePipeline => new InlinePipeline(client, () => config, undefined, { whileDebouncing: WHILE_DEBOUNCING });
  let pipeline = fresh();

  /** One keystroke: the request VS Code would make; resolves with the answer or undefined (cancelled/none). */
  let current: AbortController | undefined;
  const keystroke = (text: string, offset: number): Promise<{ answer?: InlineAnswer; ms: number }> => {
    current?.abort();
    const ac = new AbortController();
    current = ac;
    const start = performance.now();
    return pipeline
      .suggest({ doc: docFromString(text), offset, manual: false, signal: ac.signal })
      .then((answer) => ({ answer, ms: performance.now() - start }))
      .catch(() => ({ answer: undefined, ms: performance.now() - start }));
  };
  const record = (file: string, phase: Phase, kind: Kind, r: { answer?: InlineAnswer; ms: number }): void => {
    if (!r.answer) return;
    if (r.answer.mode !== kind) return; // the spot turned out to be the other kind
    const st = r.answer.result?.stats;
    samples.push({
      file: relative(ROOT, file), kind, phase, ms: Math.round(r.ms * 10) / 10, source: r.answer.source, shown: r.answer.text !== '',
      ...(st && {
        promptTokens: st.promptTokens, reusedTokens: st.reusedTokens, newTokens: st.newTokens,
        prefillMs: Math.round(st.prefillMs * 10) / 10, decodeMs: Math.round(st.decodeMs * 10) / 10, meanAccepted: Math.round(st.meanAccepted * 100) / 100,
      }),
    });
  };

  for (const file of FILES) {
    const full = readFileSync(file, 'utf8');
    const all = spots(full);
    const chosen = [...pick(all.filter((s) => s.kind === 'single'), PER_FILE), ...pick(all.filter((s) => s.kind === 'multi'), PER_FILE)];
    for (const spot of chosen) {
      // The document as the user has it: the spot's line typed up to the cursor, the rest of the file after it.
      const indent = /^\s*/.exec(spot.line)![0].length;
      const body = spot.line.slice(indent);
      const end = spot.kind === 'multi' ? body.length : randInt(Math.ceil(body.length * 0.5), body.length);
      const from = Math.max(0, end - randInt(6, 12));
      const head = full.slice(0, spot.lineStart) + spot.line.slice(0, indent);
      const tail = full.slice(spot.lineStart + spot.line.length);
      const at = (n: number): { text: string; offset: number } => ({ text: head + body.slice(0, n) + tail, offset: head.length + n });

      // Cold: "just opened": fresh suggestion cache, and the engine last saw another file.
      pipeline = fresh();
      await client.complete({ prefix: `# unrelated ${Math.random()}\n`, maxNewTokens: 1, drafter: 'none' }, { lane: 'inline' });
      const c = at(end);
      const cold = await keystroke(c.text, c.offset);
      record(file, 'cold', spot.kind, cold);

      // Opened: as the extension does when a file is opened, the context at the cursor is
      // prefetched into the KV cache; the first keystroke comes a second later.
      pipeline = fresh();
      await client.complete({ prefix: `# unrelated ${Math.random()}\n`, maxNewTokens: 1, drafter: 'none' }, { lane: 'inline' });
      const o = at(end - 1);
      void pipeline.prefetch(docFromString(o.text), o.offset);
      await sleep(1000);
      record(file, 'opened', spot.kind, await keystroke(c.text, c.offset));

      // Warm: retype the last characters in bursts, pausing after each burst.
      pipeline = fresh();
      await keystroke(at(from).text, at(from).offset); // the editor was already completing here
      let n = from;
      while (n < end) {
        const burst = Math.min(end - n, randInt(2, 5));
        let last: Promise<{ answer?: InlineAnswer; ms: number }> | undefined;
        for (let k = 0; k < burst; k++) {
          n++;
          const s = at(n);
          const p = keystroke(s.text, s.offset);
          if (k < burst - 1) {
            const r = await Promise.race([p, sleep(randInt(80, 140)).then(() => undefined)]);
            if (r === undefined) aborted++;
          }
          last = p;
        }
        const r = await last!;
        // Only the spot's own kind at the final keystroke counts for multi-line; singles anywhere.
        if (spot.kind === 'single' || n === end) record(file, 'warm', spot.kind, r);
        await sleep(randInt(200, 400));
      }
      rssPeak = Math.max(rssPeak, await client.memory());
    }
    console.log(`${relative(ROOT, file)}: ${samples.length} samples so far`);
  }
  await client.dispose();

  const table: Record<string, unknown>[] = [];
  for (const kind of ['single', 'multi'] as Kind[]) {
    for (const phase of PHASES) {
      const all = samples.filter((s) => s.kind === kind && s.phase === phase);
      const model = all.filter((s) => s.source === 'model');
      table.push({
        kind,
        phase,
        n: all.length,
        p50: pct(all.map((s) => s.ms), 50),
        p95: pct(all.map((s) => s.ms), 95),
        modelN: model.length,
        modelP50: pct(model.map((s) => s.ms), 50),
        modelP95: pct(model.map((s) => s.ms), 95),
        cacheHits: all.length - model.length,
        prefillP50: pct(model.map((s) => s.prefillMs ?? 0), 50),
        decodeP50: pct(model.map((s) => s.decodeMs ?? 0), 50),
        newTokensP50: pct(model.map((s) => s.newTokens ?? 0), 50),
        newPromptTokensP50: pct(model.map((s) => (s.promptTokens ?? 0) - (s.reusedTokens ?? 0)), 50),
        shown: all.filter((s) => s.shown).length,
      });
    }
  }
  const result = {
    date: new Date().toISOString(),
    model: { dir: relative(ROOT, MODEL) || MODEL, name: info.name, drafters: info.drafters },
    drafter: config.drafter,
    debounceMs: config.debounceMs,
    whileDebouncing: WHILE_DEBOUNCING,
    threads,
    lookup: LOOKUP,
    trees: TREES,
    inlineMaxNewTokens: config.inlineMaxNewTokens,
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, loadavg: loadavg() },
    loadMs: Math.round(loadMs),
    workerRssMB: { afterLoad: mb(rssAfterLoad), peak: mb(rssPeak) },
    files: FILES.map((f) => relative(ROOT, f)),
    abortedWhileTyping: aborted,
    table,
    samples,
  };
  mkdirSync(dirname(OUT), { recursive: true });
  writeReport(OUT, result, markdown(result, table));
}

const mb = (bytes: number): number => Math.round(bytes / 1024 / 1024);

/** Percentile p of xs, rounded to whole milliseconds; null when there are none. */
function pct(xs: number[], p: number): number | null {
  const v = percentile(xs, p);
  return v === null ? null : Math.round(v);
}

function markdown(r: { threads: number | string; date: string; model: { name: string; dir: string }; drafter: string; lookup: boolean; trees: boolean; debounceMs: number; whileDebouncing: string; inlineMaxNewTokens: number; machine: { cpus: number; loadavg: number[] }; loadMs: number; workerRssMB: { afterLoad: number; peak: number } }, table: Record<string, unknown>[]): string {
  const f = (x: unknown): string => (x === null || x === undefined ? '–' : String(x));
  const lines = [
    `# Inline completion latency`,
    '',
    `${r.date}; model ${r.model.name} (${r.model.dir}), drafter ${r.drafter}${r.drafter === 'deer' ? `${r.lookup ? '+lookup' : ''}${r.trees ? '-tree' : ''}` : ''}, debounce ${r.debounceMs} ms (meanwhile: ${r.whileDebouncing}), max ${r.inlineMaxNewTokens} new tokens, inference threads: ${r.threads}; ` +
      `${r.machine.cpus} cores, load average ${r.machine.loadavg.map((x) => x.toFixed(1)).join(' ')}.`,
    '',
    'Milliseconds from the last keystroke to the answer (debounce included), through the inference process and the extension\'s',
    'inline pipeline (`node dist/bench-latency.js`). cold: first keystroke right after opening a file (nothing cached);',
    'opened: first keystroke 1 s after opening (the context was prefetched into the KV cache); warm: the last keystroke of',
    'a burst of 2-5 while typing. "all" counts answers from the suggestion cache (typing through a shown suggestion) as they',
    'happen; "model" only answers that ran the model. "shown": answers with a suggestion (not "nothing").',
    '',
    '| mode | phase | n | p50 all | p95 all | n model | p50 model | p95 model | cache hits | shown | prompt tokens run (p50) | prefill ms (p50) | new tokens (p50) | decode ms (p50) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...table.map(
      (t) =>
        `| ${t.kind} | ${t.phase} | ${f(t.n)} | ${f(t.p50)} | ${f(t.p95)} | ${f(t.modelN)} | ${f(t.modelP50)} | ${f(t.modelP95)} | ${f(t.cacheHits)} | ${f(t.shown)} | ` +
        `${f(t.newPromptTokensP50)} | ${f(t.prefillP50)} | ${f(t.newTokensP50)} | ${f(t.decodeP50)} |`,
    ),
    '',
    `Model load (with drafter warm-up): ${r.loadMs} ms. Inference process resident memory: ${r.workerRssMB.afterLoad} MB after load, ${r.workerRssMB.peak} MB peak.`,
    '',
  ];
  return lines.join('\n');
}

runScript('bench-latency', main);
