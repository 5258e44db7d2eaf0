// Calibrates deer.inline.minConfidence: asks for inline suggestions, as the extension does, at
// random points of real files the model never saw (this repository's own sources by default),
// scores each (suggestionConfidence) and checks it against what the file really says next. For
// each threshold: how many suggestions would show, and how many of those are right. The same
// points are also asked without token healing, to show what healing is worth.
// "Right": the file continues with the suggestion's first line (at least 3 non-blank characters).
//   node dist/bench-confidence.js [--model DIR] [--files a,b] [--points N] [--out bench/confidence]
import { existsSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { DEFAULT_CONFIG, type DeerConfig } from '../editor/config';
import { docFromString } from '../editor/context';
import { InlinePipeline } from '../editor/inlineCompletion';
import { EngineClient } from '../worker/engineClient';
import { DEFAULT_MODEL, ROOT, runScript, scriptOptions, seededRandom, writeReport } from './common';
import { firstWordRight, isRight } from './rightSuggestion';

const DEFAULT_FILES = ['src/editor/policy.ts', 'src/editor/cache.ts', 'src/engine/speculative.ts', 'src/engine/tokenizer.ts',
  'src/cli/bench.ts', 'training/model.py', 'training/tokenizer.py', 'training/evaluate.py'];
const { MODEL, OUT, POINTS, FILES } = scriptOptions(process.argv.slice(2), [], (o) => ({
  MODEL: o.str('model', DEFAULT_MODEL),
  OUT: o.str('out', join(ROOT, 'bench', 'confidence')),
  POINTS: o.num('points', 200),
  FILES: o.str('files', DEFAULT_FILES.map((f) => join(ROOT, f)).join(',')).split(',').filter((f) => existsSync(f)),
}));
const THRESHOLDS = [0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6];

const rand = seededRandom(4242);

interface Point { file: string; text: string; offset: number }
interface Sample { file: string; confidence: number; right: boolean; firstWordRight: boolean; text: string; truth: string }

/** A cursor inside or at the end of a code line (not a comment, not blank), as while typing. */
function points(files: readonly string[], n: number): Point[] {
  const candidates: Point[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    let start = 0;
    for (const line of text.split('\n')) {
      const t = line.trim();
      if (t.length >= 8 && !/^(\/\/|#|\*|\/\*)/.test(t)) {
        const indent = line.length - line.trimStart().length;
        const col = rand() < 0.3 ? line.length : indent + 2 + Math.floor(rand() * (line.length - indent - 2));
        candidates.push({ file, text, offset: start + col });
      }
      start += line.length + 1;
    }
  }
  const out: Point[] = [];
  while (out.length < n && candidates.length > 0) out.push(candidates.splice(Math.floor(rand() * candidates.length), 1)[0]);
  return out;
}

async function main(): Promise<void> {
  if (!existsSync(join(MODEL, 'config.json'))) throw new Error(`no model folder at ${MODEL} (use --model DIR)`);
  const config: DeerConfig = { ...DEFAULT_CONFIG, drafter: 'ngram' };   // the output is the same with every drafter
  const client = new EngineClient({ workerPath: join(ROOT, 'dist', 'worker.js') });
  const info = await client.load({ modelDir: MODEL }, config.drafter);
  const pipeline = new InlinePipeline(client, () => config, undefined, { whileDebouncing: 'wait' });
  const unhealed = new InlinePipeline(client, () => config, undefined, { whileDebouncing: 'wait', heal: false });
  const samples: Sample[] = [];
  const without = { suggestions: 0, right: 0, firstWordRight: 0 };
  const ask = (p: Point, via: InlinePipeline) => via.suggest({ doc: docFromString(p.text), offset: p.offset, manual: true, signal: new AbortController().signal });
  for (const p of points(FILES, POINTS)) {
    const truth = p.text.slice(p.offset);
    const plain = await ask(p, unhealed);
    if (plain && plain.source === 'model' && plain.text !== '') {
      without.suggestions++;
      if (isRight(plain.text, truth)) without.right++;
      if (firstWordRight(plain.text, truth)) without.firstWordRight++;
    }
    const answer = await ask(p, pipeline);
    if (!answer || answer.source !== 'model' || answer.confidence === undefined || answer.text === '') continue;
    samples.push({ file: relative(ROOT, p.file), confidence: answer.confidence, right: isRight(answer.text, truth), firstWordRight: firstWordRight(answer.text, truth), text: answer.text, truth: truth.slice(0, 80) });
  }
  await client.dispose();
  const right = samples.filter((s) => s.right).length;
  const wordRight = samples.filter((s) => s.firstWordRight).length;
  const pct = (n: number, of: number) => `${of ? ((n / of) * 100).toFixed(0) : 0}%`;
  const rows = THRESHOLDS.map((t) => {
    const shown = samples.filter((s) => s.confidence >= t);
    const shownRight = shown.filter((s) => s.right).length;
    const shownWordRight = shown.filter((s) => s.firstWordRight).length;
    return {
      threshold: t, shown: shown.length, shownShare: shown.length / samples.length, rightAmongShown: shown.length ? shownRight / shown.length : 0, rightKept: right ? shownRight / right : 0,
      wordRightAmongShown: shown.length ? shownWordRight / shown.length : 0, wordRightKept: wordRight ? shownWordRight / wordRight : 0,
    };
  });
  const report = { model: info.name, date: new Date().toISOString(), points: POINTS, suggestions: samples.length, right, firstWordRight: wordRight, withoutHealing: without, default: DEFAULT_CONFIG.inlineMinConfidence, rows, samples };
  const md = [
    `# Inline suggestion confidence against correctness (${info.name})`,
    '',
    `${samples.length} suggestions at ${POINTS} random points of ${FILES.length} files; ${right} right (the file continues with the suggestion's first line). Default threshold ${DEFAULT_CONFIG.inlineMinConfidence}.`,
    '',
    '| prompt | suggestions | right (first line) | first word right |',
    '|---|---:|---:|---:|',
    `| token healing (shipped) | ${samples.length} | ${right} | ${wordRight} (${pct(wordRight, samples.length)}) |`,
    `| as typed (ends mid-token) | ${without.suggestions} | ${without.right} | ${without.firstWordRight} (${pct(without.firstWordRight, without.suggestions)}) |`,
    '',
    '| threshold | shown | share shown | right among shown | right ones kept | first word right among shown | first-word-right ones kept |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.threshold} | ${r.shown} | ${(r.shownShare * 100).toFixed(0)}% | ${(r.rightAmongShown * 100).toFixed(0)}% | ${(r.rightKept * 100).toFixed(0)}% | ${(r.wordRightAmongShown * 100).toFixed(0)}% | ${(r.wordRightKept * 100).toFixed(0)}% |`),
    '',
  ].join('\n');
  writeReport(OUT, report, md);
}

runScript('bench-confidence', main);
