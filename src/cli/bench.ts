// `deer bench`: every prompt with every drafter in one process, greedy (and sampled, with
// --temperature); a sweep of draft-tree node budgets with --tree-budgets. JSON + Markdown + SVG.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { CompletionResult, DEFAULT_LOOKUP_TREE_BRANCHES, DEFAULT_TREE_BUDGET, DrafterName, Engine } from '../engine';
import { Options, UsageError } from './args';
import { renderBudgetChart, renderChart } from './chart';
import { commonOptions, parseDrafterSpec, percentile, ROOT } from './common';

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
  /** Greedy rows: every output equals none's. Sampling rows: null (see mean_logprob). */
  identical: boolean | null;
  /** 0 = greedy. */
  temperature: number;
  /**
   * Sampling rows: the verifier's mean log-probability per output token (temperature 1). Sampling
   * draws from one seeded stream per completion, not one per position, so a lossless drafter's
   * output differs from none's for the same seed; what lossless sampling keeps is the
   * distribution, and with it this mean (equal to none's within noise).
   */
  mean_logprob: number | null;
  /** mean_logprob minus none's at the same temperature, paired by prompt, and its standard error over prompts. */
  logprob_delta: number | null;
  logprob_delta_se: number | null;
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
const mean = (xs: readonly number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/**
 * One bench row: a drafter name as --drafters spells it ('deer+lookup' = deer with prompt lookup,
 * '-tree' = draft trees of --tree-budget nodes, '-tree@N' = of N nodes), at a temperature.
 */
interface Row {
  label: string;
  /** The label of the row this one is compared with: none at the same temperature. */
  baseline: string;
  drafter: DrafterName;
  lookup: boolean;
  treeBudget: number;
  temperature: number;
}

function parseRow(name: string, temperature: number, defaultBudget: number): Row {
  return {
    label: temperature > 0 ? `${name} t=${temperature}` : name,
    baseline: temperature > 0 ? `none t=${temperature}` : 'none',
    ...parseDrafterSpec(name, defaultBudget),
    temperature,
  };
}

/** --tree-budgets 1,4,16: the budgets, ascending. */
function parseBudgets(text: string | undefined): number[] {
  if (text === undefined) return [];
  const budgets = text.split(',').map((x) => Number(x.trim()));
  if (budgets.length === 0 || budgets.some((b) => !Number.isInteger(b) || b < 1)) throw new UsageError(`--tree-budgets: a list of whole node counts, at least 1 (got "${text}")`);
  return [...new Set(budgets)].sort((a, b) => a - b);
}

/** Drafters of the --tree-budgets sweep: one tree row per budget, and the chain each grows from. */
const BUDGET_DRAFTERS = ['deer', 'deer+lookup'] as const;

export async function runBench(o: Options): Promise<void> {
  const promptsFile = o.str('prompts');
  if (!promptsFile) throw new UsageError('--prompts is required');
  const promptField = o.str('prompt-field', 'prompt');
  const suffixField = o.str('suffix-field', 'suffix');
  const limit = o.num('limit', Infinity);
  const maxNewTokens = o.num('max-new-tokens', 64);
  const blockSize = o.num('block-size');
  const treeBudgetOption = o.num('tree-budget');
  const adaptiveBlock = !o.flag('fixed-block');
  const heal = !o.flag('no-heal');
  const drafterList = o.str('drafters');
  const temperature = o.num('temperature', 0);
  if (!(temperature >= 0)) throw new UsageError(`--temperature must be 0 or more, got ${temperature}`);
  const topP = o.num('top-p');
  const seed = o.num('seed', 1);
  if (!Number.isInteger(seed)) throw new UsageError(`--seed must be a whole number, got ${seed}`);
  const budgets = parseBudgets(o.str('tree-budgets'));
  const stem = basename(promptsFile).replace(/\.jsonl?$/, '');
  const jsonOut = resolve(o.str('json', join(ROOT, 'bench', `${stem}.json`)));
  const saveOutputs = o.str('save-outputs');
  const common = commonOptions(o);
  o.checkUnused();

  const prompts = readPrompts(resolve(promptsFile), promptField, suffixField, limit);
  if (prompts.length === 0) throw new UsageError(`no prompts in ${promptsFile}`);
  const engine = await Engine.load(common);
  for (const w of engine.info.warnings ?? []) process.stderr.write(`deer: warning: ${w}\n`);
  const treeBudget = treeBudgetOption ?? engine.info.treeBudget ?? DEFAULT_TREE_BUDGET;
  try {
    const budgetRows = budgets.length ? ['none', ...BUDGET_DRAFTERS.flatMap((d) => [d, ...budgets.map((b) => `${d}-tree@${b}`)])] : [];
    const names: string[] = drafterList
      ? drafterList.split(',').map((s) => s.trim())
      : budgets.length
        ? []
        : [...engine.info.drafters, ...(engine.info.drafters.includes('deer') ? ['deer-tree'] : [])];
    const drafters = [...new Set([...names, ...budgetRows])];
    const temperatures = temperature > 0 ? [0, temperature] : [0];
    const rows = temperatures.flatMap((t) => drafters.map((d) => parseRow(d, t, treeBudget)));
    const chainsOnly = rows.some((r) => r.treeBudget > 0) && !engine.info.treeAttention;
    const treeNote = chainsOnly
      ? `The verifier has no tree_mask input (deer.json verifier.tree_attention), so the -tree rows verify chains (python -m training.retrofit_tree adds it).`
      : rows.some((r) => r.treeBudget > 0)
        ? `-tree rows: draft trees of at most ${treeBudget} drafter nodes per pass (-tree@N: N nodes)${adaptiveBlock ? ' (the pass-time model may send fewer)' : ''}, prompt-lookup nodes on top; the others verify chains.`
        : '';
    if (chainsOnly) process.stderr.write(`deer: ${treeNote}\n`);
    for (const r of rows) {
      if (!engine.info.drafters.includes(r.drafter)) throw new UsageError(`drafter "${r.label}" is not available for ${engine.info.name}`);
      await engine.warm(r.drafter);
    }
    const request = (r: Row, p: Prompt, i: number) => ({
      prefix: p.prefix,
      suffix: p.suffix,
      maxNewTokens,
      drafter: r.drafter,
      lookup: r.lookup,
      treeBudget: r.treeBudget,
      blockSize,
      adaptiveBlock,
      heal,
      // Each prompt has its own seed, the same for every row.
      ...(r.temperature > 0 ? { temperature: r.temperature, topP, seed: seed + i, logprobs: true } : {}),
    });
    // One untimed completion per row first: onnxruntime's first passes of each shape are slow.
    for (const r of rows) {
      engine.clearCache();
      await engine.complete(request(r, prompts[0], 0));
    }
    const runs = new Map<string, CompletionResult[]>(rows.map((r) => [r.label, []]));
    const rss = new Map<string, number>(rows.map((r) => [r.label, 0]));
    const outputs: { name: string; completions: Record<string, string> }[] = [];
    const t0 = performance.now();
    for (const [i, p] of prompts.entries()) {
      const line: string[] = [];
      const completions: Record<string, string> = {};
      for (const row of rows) {
        engine.clearCache(); // every run prefills from scratch: latencies stay comparable
        const r = await engine.complete(request(row, p, i));
        runs.get(row.label)!.push(r);
        rss.set(row.label, Math.max(rss.get(row.label)!, process.memoryUsage().rss));
        completions[row.label] = r.text;
        line.push(`${row.label} ${r.stats.tokensPerSecond.toFixed(0)} tok/s acc ${r.stats.meanAccepted.toFixed(1)}`);
      }
      outputs.push({ name: p.name, completions });
      const elapsed = (performance.now() - t0) / 1000;
      const eta = (elapsed / (i + 1)) * (prompts.length - i - 1);
      process.stderr.write(`[${i + 1}/${prompts.length}] ${p.name}: ${line.join(' | ')}  (${elapsed.toFixed(0)} s, ~${eta.toFixed(0)} s left)\n`);
    }

    const results: Record<string, DrafterResult> = {};
    /** Per prompt: the verifier's mean log-probability per token of the row's output. */
    const seqLogprob = (r: CompletionResult) => (r.tokenLogprobs?.length ? mean(r.tokenLogprobs) : undefined);
    for (const row of rows) {
      const d = row.label;
      const rs = runs.get(d)!;
      const base = runs.get(row.baseline);
      const sampled = row.temperature > 0;
      const tokens = rs.reduce((s, r) => s + r.stats.newTokens, 0);
      const decodeMs = rs.reduce((s, r) => s + r.stats.decodeMs, 0);
      const passes = rs.reduce((s, r) => s + r.stats.passes, 0);
      const hist: number[] = [];
      for (const r of rs) r.stats.acceptedHistogram.forEach((c, n) => (hist[n] = (hist[n] ?? 0) + c));
      const lat = rs.map((r) => r.stats.totalMs);
      const identicalCount = base ? rs.filter((r, i) => same(r.tokens, base[i].tokens)).length : 0;
      const logprobs = rs.flatMap((r) => r.tokenLogprobs ?? []);
      const deltas = base ? rs.flatMap((r, i) => {
        const a = seqLogprob(r);
        const b = seqLogprob(base[i]);
        return a === undefined || b === undefined ? [] : [a - b];
      }) : [];
      const deltaSe = deltas.length > 1 ? Math.sqrt(deltas.reduce((s, x) => s + (x - mean(deltas)) ** 2, 0) / (deltas.length - 1) / deltas.length) : null;
      results[d] = {
        tokens_per_s: round(decodeMs > 0 ? (tokens * 1000) / decodeMs : 0),
        mean_accepted: round(passes > 0 ? tokens / passes : 0),
        speedup: null,
        estimated_speedup: round(tokens > 0 ? rs.reduce((s, r) => s + r.stats.estimatedSpeedup * r.stats.newTokens, 0) / tokens : 0),
        identical: base && !sampled ? identicalCount === rs.length : null,
        temperature: row.temperature,
        mean_logprob: sampled && logprobs.length ? round(mean(logprobs), 4) : null,
        logprob_delta: sampled && deltas.length ? round(mean(deltas), 4) : null,
        logprob_delta_se: sampled && deltaSe !== null ? round(deltaSe, 4) : null,
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
    for (const row of rows) {
      const base = results[row.baseline];
      if (base) results[row.label].speedup = round(results[row.label].tokens_per_s / base.tokens_per_s);
    }
    const sweep = budgets.length ? budgetSweep(results, budgets) : undefined;

    const report = {
      results,
      model: { name: engine.info.name, dir: engine.info.modelDir, vocab_size: engine.info.vocabSize },
      machine: {
        cpu: cpus()[0]?.model ?? 'unknown',
        cores: cpus().length,
        memory_gb: round(totalmem() / 2 ** 30, 1),
        platform: `${platform()} ${release()}`,
        node: process.version,
        threads: engine.threads,
        spinning: engine.spinning,
        io_binding: common.ioBinding,
        lookup_tree_branches: common.lookupTreeBranches ?? DEFAULT_LOOKUP_TREE_BRANCHES,
        process_peak_rss_mb: round(process.resourceUsage().maxRSS / 1024, 1),
      },
      config: {
        prompts: basename(promptsFile),
        prompt_count: prompts.length,
        max_new_tokens: maxNewTokens,
        block_size: blockSize ?? 'default',
        adaptive_block: adaptiveBlock,
        heal,
        tree_budget: treeBudget,
        tree_budgets: budgets.length ? budgets : undefined,
        tree_attention: engine.info.treeAttention === true,
        greedy: true,
        temperature: temperature > 0 ? temperature : undefined,
        top_p: temperature > 0 ? (topP ?? 1) : undefined,
        seed: temperature > 0 ? seed : undefined,
        date: new Date().toISOString(),
      },
    };
    const greedyRows = rows.filter((r) => r.temperature === 0).map((r) => r.label);
    const sampledRows = rows.filter((r) => r.temperature > 0).map((r) => r.label);
    const sections = [markdownTable(report.results, greedyRows)];
    if (sampledRows.length) {
      sections.push(
        `Sampling at temperature ${temperature}${topP !== undefined ? `, top-p ${topP}` : ''}, seed ${seed} + prompt index:\n\n${samplingTable(report.results, sampledRows)}\n` +
          'Sampled outputs are not compared token by token: the engine draws from one seeded stream per completion, not one per position, ' +
          "so a lossless drafter's output differs from none's for the same seed. The check is the distribution's: the verifier's mean " +
          "log-probability per output token (temperature 1), which lossless sampling keeps equal to none's within noise (difference paired by prompt, ± its standard error).\n",
      );
    }
    if (sweep) sections.push(`Accepted length against the draft-tree node budget (greedy; budget = most drafter nodes per pass; +lookup rows add lookup nodes):\n\n${budgetTable(sweep)}`);
    const table = sections.join('\n');
    const title = `${engine.info.name} on ${basename(promptsFile)}: ${prompts.length} prompts, ${maxNewTokens} new tokens, greedy${temperature > 0 ? ` and t=${temperature}` : ''}`;
    mkdirSync(dirname(jsonOut), { recursive: true });
    writeFileSync(jsonOut, JSON.stringify(sweep ? { ...report, tree_budget_sweep: sweep } : report, null, 2) + '\n');
    const stemOut = jsonOut.replace(/\.json$/, '');
    writeFileSync(`${stemOut}.md`, `# ${title}\n\n${table}\n${treeNote ? treeNote + '\n\n' : ''}Machine: ${report.machine.cpu}, ${report.machine.cores} cores, ${report.machine.threads} threads, node ${report.machine.node}.\n`);
    const written = [jsonOut, `${stemOut}.md`, `${stemOut}.svg`];
    if (sweep) {
      writeFileSync(`${stemOut}.budgets.svg`, renderBudgetChart(`${engine.info.name} on ${basename(promptsFile)}: accepted length and speedup by tree node budget`, sweep));
      written.push(`${stemOut}.budgets.svg`);
    }
    const chart = renderChart(
      title,
      greedyRows.map((d) => ({
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
    process.stdout.write(`\n${title}\n\n${table}\n${treeNote ? treeNote + '\n\n' : ''}wrote ${written.join(', ')}\n`);
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

function samplingTable(results: Record<string, DrafterResult>, rows: readonly string[]): string {
  const out = ['| drafter | tokens/s | mean accepted | drafted/pass | speedup | log p/token | vs none | p50 ms | p95 ms |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const d of rows) {
    const r = results[d];
    const delta = r.logprob_delta === null ? 'n/a' : `${r.logprob_delta >= 0 ? '+' : ''}${r.logprob_delta.toFixed(3)} ± ${(r.logprob_delta_se ?? 0).toFixed(3)}`;
    out.push(
      `| ${d} | ${r.tokens_per_s.toFixed(1)} | ${r.mean_accepted.toFixed(2)} | ${r.drafted_per_pass.toFixed(1)} | ${r.speedup === null ? 'n/a' : r.speedup.toFixed(2) + 'x'} | ${r.mean_logprob === null ? 'n/a' : r.mean_logprob.toFixed(3)} | ${delta} | ${r.p50_ms.toFixed(0)} | ${r.p95_ms.toFixed(0)} |`,
    );
  }
  return out.join('\n') + '\n';
}

export interface BudgetPoint {
  /** Most tree nodes per pass; null for the chain. */
  budget: number | null;
  mean_accepted: number;
  speedup: number | null;
  tokens_per_s: number;
  drafted_per_pass: number;
  identical: boolean | null;
}

/** Per sweep drafter (deer, deer+lookup): its chain and its trees by budget (greedy rows). */
export type BudgetSweep = Record<string, BudgetPoint[]>;

function budgetSweep(results: Record<string, DrafterResult>, budgets: readonly number[]): BudgetSweep {
  const point = (label: string, budget: number | null): BudgetPoint => {
    const r = results[label];
    return { budget, mean_accepted: r.mean_accepted, speedup: r.speedup, tokens_per_s: r.tokens_per_s, drafted_per_pass: r.drafted_per_pass, identical: r.identical };
  };
  return Object.fromEntries(BUDGET_DRAFTERS.map((d) => [d, [point(d, null), ...budgets.map((b) => point(`${d}-tree@${b}`, b))]]));
}

function budgetTable(sweep: BudgetSweep): string {
  const names = Object.keys(sweep);
  const head = names.map((d) => `${d}: accepted | speedup | nodes/pass`).join(' | ');
  const out = [`| budget | ${head} | identical |`, `|---:|${names.map(() => '---:|---:|---:|').join('')}:---:|`];
  const n = sweep[names[0]].length;
  for (let i = 0; i < n; i++) {
    const pts = names.map((d) => sweep[d][i]);
    const cells = pts.map((p) => `${p.mean_accepted.toFixed(2)} | ${p.speedup === null ? 'n/a' : p.speedup.toFixed(2) + 'x'} | ${p.drafted_per_pass.toFixed(1)}`).join(' | ');
    const ident = pts.every((p) => p.identical === true) ? 'yes' : pts.some((p) => p.identical === false) ? 'no' : 'n/a';
    out.push(`| ${pts[0].budget ?? 'chain'} | ${cells} | ${ident} |`);
  }
  return out.join('\n') + '\n';
}
