// Single-line infilling, as a user gets it: in MBPP's reference Python solutions
// (../shared/eval/sanitized-mbpp.json, evaluation only), the cursor goes to the start of one line
// after its indent, the rest of the program is the suffix, and the extension's inline pipeline asks
// for that line (Alt+\, single-line). Counted: suggestions equal to the real line, and programs
// whose tests still pass with the suggestion in place of the line. Each point is also asked without
// token healing (the prompt then ends in the indent's blanks).
//   node dist/bench-infill.js [--model DIR] [--limit N] [--out bench/infill]
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, type DeerConfig } from '../editor/config';
import { docFromString } from '../editor/context';
import { InlinePipeline } from '../editor/inlineCompletion';
import { EngineClient } from '../worker/engineClient';
import { DEFAULT_MODEL, ROOT, runScript, scriptOptions, seededRandom, writeReport } from './common';

const { MODEL, OUT, LIMIT, DATA, PYTHON } = scriptOptions(process.argv.slice(2), [], (o) => ({
  MODEL: o.str('model', DEFAULT_MODEL),
  OUT: o.str('out', join(ROOT, 'bench', 'infill')),
  LIMIT: o.num('limit', 300),
  DATA: o.str('data', join(ROOT, '..', 'shared', 'eval', 'sanitized-mbpp.json')),
  PYTHON: o.str('python', 'python3'),
}));

interface Problem { task_id: number; code: string; test_imports: string[]; test_list: string[] }
interface Point { task: number; line: number; truth: string; prefix: string; suffix: string; program: (line: string) => string }

/** One line per program (seeded): a code line inside a function body, not its def, not blank. */
function points(problems: readonly Problem[], n: number): Point[] {
  const rand = seededRandom(7);
  const out: Point[] = [];
  for (const p of problems) {
    const lines = p.code.replace(/\r\n/g, '\n').split('\n');
    const body = lines.map((l, i) => i).filter((i) => /^\s+\S/.test(lines[i]) && lines[i].trim().length >= 4 && !/^\s*(#|"""|''')/.test(lines[i]));
    if (body.length === 0) continue;
    const i = body[Math.floor(rand() * body.length)];
    const indent = /^\s*/.exec(lines[i])![0];
    const before = lines.slice(0, i).join('\n') + '\n' + indent;
    const after = '\n' + lines.slice(i + 1).join('\n');
    const tests = [...p.test_imports, ...p.test_list].join('\n');
    out.push({
      task: p.task_id, line: i, truth: lines[i].trim(), prefix: before, suffix: after,
      program: (line) => `${before}${line}${after}\n\n${tests}\n`,
    });
    if (out.length >= n) break;
  }
  return out;
}

function passes(program: string): boolean {
  try {
    execFileSync(PYTHON, ['-c', program], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  if (!existsSync(DATA)) throw new Error(`no ${DATA} (evaluation data; use --data FILE)`);
  const problems = JSON.parse(readFileSync(DATA, 'utf8')) as Problem[];
  const config: DeerConfig = { ...DEFAULT_CONFIG, drafter: 'ngram' }; // the output is the same with every drafter
  const client = new EngineClient({ workerPath: join(ROOT, 'dist', 'worker.js') });
  const info = await client.load({ modelDir: MODEL }, config.drafter);
  const arms = { healed: new InlinePipeline(client, () => config, undefined, { whileDebouncing: 'wait' }), typed: new InlinePipeline(client, () => config, undefined, { whileDebouncing: 'wait', heal: false }) };
  const score = { healed: { exact: 0, pass: 0, empty: 0 }, typed: { exact: 0, pass: 0, empty: 0 } };
  const rows: { task: number; truth: string; healed: string; typed: string }[] = [];
  const all = points(problems, LIMIT);
  for (const p of all) {
    const row = { task: p.task, truth: p.truth, healed: '', typed: '' };
    for (const arm of ['healed', 'typed'] as const) {
      const answer = await arms[arm].suggest({ doc: docFromString(p.prefix + p.suffix), offset: p.prefix.length, manual: true, signal: new AbortController().signal });
      row[arm] = answer?.text ?? '';
    }
    rows.push(row);
  }
  await client.dispose();
  // The tests run after the model is gone: a synchronous child process would stall the client's liveness checks.
  const truthPasses = all.filter((p) => passes(p.program(p.truth))).length;
  for (const [i, p] of all.entries()) {
    for (const arm of ['healed', 'typed'] as const) {
      const text = rows[i][arm];
      if (text.trim() === '') score[arm].empty++;
      if (text.trim() === p.truth) score[arm].exact++;
      if (text.trim() !== '' && passes(p.program(text))) score[arm].pass++;
    }
  }
  const n = all.length;
  const pct = (x: number) => `${((x / n) * 100).toFixed(1)}%`;
  const report = { model: info.name, date: new Date().toISOString(), points: n, truthPasses, score, rows };
  const md = [
    `# Single-line infilling in MBPP's reference solutions (${info.name})`,
    '',
    `${n} programs, one line each (seeded), asked as Alt+\\ at the line's indent with the rest of the program after the cursor; ${truthPasses} of them pass their tests with the real line.`,
    '',
    '| prompt | exact line | tests pass | empty |',
    '|---|---:|---:|---:|',
    `| token healing (shipped) | ${score.healed.exact} (${pct(score.healed.exact)}) | ${score.healed.pass} (${pct(score.healed.pass)}) | ${score.healed.empty} |`,
    `| as typed (ends in the indent) | ${score.typed.exact} (${pct(score.typed.exact)}) | ${score.typed.pass} (${pct(score.typed.pass)}) | ${score.typed.empty} |`,
    '',
  ].join('\n');
  writeReport(OUT, report, md);
}

runScript('bench-infill', main);
