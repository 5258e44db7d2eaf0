// `deer bench`: every prompt with every drafter in one process, greedy; JSON + Markdown + SVG.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CompletionResult, DEFAULT_TREE_BUDGET, Engine } from '../engine';
import { Options, UsageError } from './args';
import { renderChart } from './chart';
import { commonOptions, drafterName, percentile, ROOT } from './common';

interface Prompt {
  name: string;
  prefix: string;
  suffix: string;
}

export interface DrafterResult {
  tokens_per_s: number;
  mean_accepted: number;
  /** Measured: tokens_per_s / none's tokens_per_s (null without the none baseline). */
  speedup: number | null;
  /** The engine's own estimate (RunStats.estimatedSpeedup, token-weighted): what it would claim without an A/B. */
  estimated_speedup: number;
  identical: boolean | null;
  p50_ms: number;
  p95_ms: number;
  peak_rss_mb: number;
  new_tokens: number;
  passes: number;
  /** Drafted tokens sent per verifier pass (tree nodes counted). */
  drafted_per_pass: number;
  /** The passes verified draft trees. */
  trees: boolean;
  draft_ms: number;
  verify_ms: number;
  prompts_identical: number;
  accepted_histogram: number[];
}

function readPrompts(file: string, promptField: string, suffixField: string, limit: number): Prompt[] {
  if (!existsSync(file)) throw new UsageError(`prompts file not found: ${file}`);
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim().length > 0);
  const prompts: Prompt[] = [];
  for (const [i, line] of lines.entries()) {
    if (prompts.length >= limit) break;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line);
    } catch {
      throw new UsageError(`${file}:${i + 1}: not valid JSON`);
    }
    const prefix = row[promptField];
    if (typeof prefix !== 'string') throw new UsageError(`${file}:${i + 1}: no string field "${promptField}"`);
    const suffix = typeof row[suffixField] === 'string' ? (row[suffixField] as string) : '';
    prompts.push({ name: typeof row.name === 'string' ? row.name : `#${i + 1}`, prefix, suffix });
  }
  return prompts;
}

const same = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;

export async function runBench(o: Options): Promise<void> {
  const promptsFile = o.str('prompts');
  if (!promptsFile) throw new UsageError('--prompts is required');
  const promptField = o.str('prompt-field', 'prompt');
  const suffixField = o.str('suffix-field', 'suffix');
  const limit = o.num('limit', Infinity);
  const maxNewTokens = o.num('max-new-tokens', 64);
  const blockSize = o.num('block-size');
  const treeBudget = o.num('tree-budget', DEFAULT_TREE_BUDGET);
  const adaptiveBlock = !o.flag('fixed-block');
  const drafterList = o.str('drafters');
  const stem = basename(promptsFile).replace(/\.jsonl?$/, '');
  const jsonOut = resolve(o.str('json', join(ROOT, 'bench', `${stem}.json`)));
  const saveOutputs = o.str('save-outputs');
  const common = commonOptions(o);
  o.checkUnused();

  const prompts = readPrompts(resolve(promptsFile), promptField, suffixField, limit);
  if (prompts.length === 0) throw new UsageError(`no prompts in ${promptsFile}`);
  const engine = await Engine.load(common);
  for (const w of engine.info.warnings ?? []) process.stderr.write(`deer: warning: ${w}\n`);
  try {
    // 'deer+lookup' = deer with prompt lookup (CompletionRequest.lookup); '-tree' = draft trees
    // (CompletionRequest.treeBudget), plain 'deer' = chains
    const drafters: string[] = drafterList
      ? drafterList.split(',').map((s) => s.trim())
      : [...engine.info.drafters, ...(engine.info.drafters.includes('deer') ? ['deer-tree'] : [])];
    const config = (d: string) => {
      const tree = d.endsWith('-tree');
      const base = tree ? d.slice(0, -'-tree'.length) : d;
      return { drafter: drafterName(base.replace(/\+lookup$/, '')), lookup: base.endsWith('+lookup'), treeBudget: tree ? treeBudget : 0 };
    };
    const chainsOnly = drafters.some((d) => d.endsWith('-tree')) && !engine.info.treeAttention;
    const treeNote = chainsOnly
      ? `The verifier has no tree_mask input (deer.json verifier.tree_attention), so the -tree rows verify chains (python -m training.retrofit_tree adds it).`
      : drafters.some((d) => d.endsWith('-tree'))
        ? `-tree rows: draft trees of at most ${treeBudget} nodes per pass${adaptiveBlock ? ' (the pass-time model may send fewer)' : ''}; the others verify chains.`
        : '';
    if (chainsOnly) process.stderr.write(`deer: ${treeNote}\n`);
    for (const d of drafters) {
      if (!engine.info.drafters.includes(config(d).drafter)) throw new UsageError(`drafter "${d}" is not available for ${engine.info.name}`);
      await engine.warm(config(d).drafter);
    }
    // One untimed completion per drafter first: onnxruntime's first passes of each shape are slow.
    for (const d of drafters) {
      engine.clearCache();
      await engine.complete({ prefix: prompts[0].prefix, suffix: prompts[0].suffix, maxNewTokens, ...config(d), blockSize, adaptiveBlock });
    }
    const runs = new Map<string, CompletionResult[]>(drafters.map((d) => [d, []]));
    const rss = new Map<string, number>(drafters.map((d) => [d, 0]));
    const outputs: { name: string; completions: Record<string, string> }[] = [];
    const t0 = performance.now();
    for (const [i, p] of prompts.entries()) {
      const line: string[] = [];
      const completions: Record<string, string> = {};
      for (const d of drafters) {
        engine.clearCache(); // every run prefills from scratch: latencies stay comparable
        const r = await engine.complete({ prefix: p.prefix, suffix: p.suffix, maxNewTokens, ...config(d), blockSize, adaptiveBlock });
        runs.get(d)!.push(r);
        rss.set(d, Math.max(rss.get(d)!, process.memoryUsage().rss));
        completions[d] = r.text;
        line.push(`${d} ${r.stats.tokensPerSecond.toFixed(0)} tok/s acc ${r.stats.meanAccepted.toFixed(1)}`);
      }
      outputs.push({ name: p.name, completions });
      const elapsed = (performance.now() - t0) / 1000;
      const eta = (elapsed / (i + 1)) * (prompts.length - i - 1);
      process.stderr.write(`[${i + 1}/${prompts.length}] ${p.name}: ${line.join(' | ')}  (${elapsed.toFixed(0)} s, ~${eta.toFixed(0)} s left)\n`);
    }

    const base = runs.get('none');
    const results: Record<string, DrafterResult> = {};
    for (const d of drafters) {
      const rs = runs.get(d)!;
      const tokens = rs.reduce((s, r) => s + r.stats.newTokens, 0);
      const decodeMs = rs.reduce((s, r) => s + r.stats.decodeMs, 0);
      const passes = rs.reduce((s, r) => s + r.stats.passes, 0);
      const hist: number[] = [];
      for (const r of rs) r.stats.acceptedHistogram.forEach((c, n) => (hist[n] = (hist[n] ?? 0) + c));
      const lat = rs.map((r) => r.stats.totalMs);
      const identicalCount = base ? rs.filter((r, i) => same(r.tokens, base[i].tokens)).length : 0;
      results[d] = {
        tokens_per_s: round(decodeMs > 0 ? (tokens * 1000) / decodeMs : 0),
        mean_accepted: round(passes > 0 ? tokens / passes : 0),
        speedup: null,
        estimated_speedup: round(tokens > 0 ? rs.reduce((s, r) => s + r.stats.estimatedSpeedup * r.stats.newTokens, 0) / tokens : 0),
        identical: base ? identicalCount === rs.length : null,
        p50_ms: round(percentile(lat, 50) ?? 0, 1),
        p95_ms: round(percentile(lat, 95) ?? 0, 1),
        peak_rss_mb: round(rss.get(d)! / 2 ** 20, 1),
        new_tokens: tokens,
        passes,
        drafted_per_pass: round(passes > 0 ? rs.reduce((s, r) => s + (r.stats.draftedTokens ?? 0), 0) / passes : 0),
        trees: rs.some((r) => r.stats.trees === true),
        draft_ms: round(rs.reduce((s, r) => s + r.stats.draftMs, 0), 1),
        verify_ms: round(rs.reduce((s, r) => s + r.stats.verifyMs, 0), 1),
        prompts_identical: identicalCount,
        accepted_histogram: Array.from(hist, (c) => c ?? 0),
      };
    }
    if (results.none) for (const d of drafters) results[d].speedup = round(results[d].tokens_per_s / results.none.tokens_per_s);

    const report = {
      results,
      model: { name: engine.info.name, dir: engine.info.modelDir, vocab_size: engine.info.vocabSize },
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memory_gb: round(totalmem() / 2 ** 30, 1),
        platform: `${platform()} ${release()}`,
        node: process.version,
        threads: common.threads ?? engine.threads,
        spinning: common.spinning,
        io_binding: common.ioBinding,
        process_peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
      },
      config: {
        prompts: basename(promptsFile),
        prompt_count: prompts.length,
        max_new_tokens: maxNewTokens,
        block_size: blockSize ?? 'default',
        adaptive_block: adaptiveBlock,
        tree_budget: treeBudget,
        tree_attention: engine.info.treeAttention === true,
        greedy: true,
        date: new Date().toISOString(),
      },
    };
    const table = markdownTable(report.results, drafters);
    const title = `${engine.info.name} on ${basename(promptsFile)}: ${prompts.length} prompts, ${maxNewTokens} new tokens, greedy`;
    mkdirSync(dirname(jsonOut), { recursive: true });
    writeFileSync(jsonOut, JSON.stringify(report, null, 2) + '\n');
    const stemOut = jsonOut.replace(/\.json$/, '');
    writeFileSync(`${stemOut}.md`, `# ${title}\n\n${table}\n${treeNote ? treeNote + '\n\n' : ''}Machine: ${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.threads} threads, node ${report.machine.node}.\n`);
    const chart = renderChart(
      title,
      drafters.map((d) => ({
        drafter: d,
        tokensPerSecond: results[d].tokens_per_s,
        speedup: results[d].speedup,
        meanAccepted: results[d].mean_accepted,
        histogram: results[d].accepted_histogram,
      })),
    );
    writeFileSync(`${stemOut}.svg`, chart);
    if (saveOutputs) {
      mkdirSync(dirname(resolve(saveOutputs)), { recursive: true });
      writeFileSync(resolve(saveOutputs), outputs.map((x) => JSON.stringify(x)).join('\n') + '\n');
    }
    process.stdout.write(`\n${title}\n\n${table}\n${treeNote ? treeNote + '\n\n' : ''}wrote ${jsonOut}, ${stemOut}.md, ${stemOut}.svg\n`);
  } finally {
    await engine.dispose();
  }
}

function markdownTable(results: Record<string, DrafterResult>, drafters: readonly string[]): string {
  const rows = [
    '| drafter | tokens/s | mean accepted | drafted/pass | speedup | est. speedup | identical | p50 ms | p95 ms | peak RSS MB |',
    '|---|---:|---:|---:|---:|---:|:---:|---:|---:|---:|',
  ];
  for (const d of drafters) {
    const r = results[d];
    const ident = r.identical === null ? 'n/a' : r.identical ? 'yes' : `no (${r.prompts_identical} same)`;
    rows.push(
      `| ${d} | ${r.tokens_per_s.toFixed(1)} | ${r.mean_accepted.toFixed(2)} | ${r.drafted_per_pass.toFixed(1)} | ${r.speedup === null ? 'n/a' : r.speedup.toFixed(2) + 'x'} | ${r.estimated_speedup.toFixed(2)}x | ${ident} | ${r.p50_ms.toFixed(0)} | ${r.p95_ms.toFixed(0)} | ${r.peak_rss_mb.toFixed(0)} |`,
    );
  }
  return rows.join('\n') + '\n';
}
