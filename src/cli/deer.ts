// `deer`: complete a file at a cursor, or benchmark the drafters on a prompt set.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { DEFAULT_TREE_BUDGET, Engine, MALLOC_ENV, ModelFolderError } from '../engine';
import { Options, parseArgs, UsageError } from './args';
import { runBench } from './bench';
import { runPasses } from './passes';
import { commonOptions, describeStats, parseDrafterSpec } from './common';

const USAGE = `usage:
  deer complete --prefix-file F [--suffix-file S] [--model DIR]
                [--drafter none|ngram|ar|deer[+lookup][-tree[@N]]] (default: as the extension, deer+lookup-tree)
                [--max-new-tokens N] [--block-size K] [--temperature T] [--top-p P] [--seed N]
                [--stop STR] [--compare] [--json] [--fixed-block] [--threads N] [--spin|--no-spin]
  deer bench --prompts FILE.jsonl [--prompt-field prompt] [--suffix-field suffix] [--limit N]
             [--max-new-tokens N] [--drafters none,ngram,ar,deer[,deer+lookup,deer-tree,deer+lookup-tree]] [--model DIR]
             [--json OUT.json] [--tree-budget N] [--tree-budgets 1,4,16,32,64]
             [--temperature T [--top-p P] [--seed N]]
             [--save-outputs FILE.jsonl] [--block-size K] [--fixed-block] [--no-heal] [--threads N] [--spin|--no-spin]
             [--lookup-branches N] (prompt-lookup continuations per deer+lookup draft tree)
  deer passes [--model DIR] [--pasts 64,256,512,1024] [--q 1,4,8,16,32] [--reps N] [--modes bound,plain]
             (verifier ms per pass by cached length and tokens per pass)
Without --model, the embedded default model (models/default) is used.`;

const FLAGS: Record<string, Set<string>> = {
  complete: new Set(['json', 'compare', 'spin', 'no-spin', 'help', 'io-binding', 'fixed-block']),
  bench: new Set(['spin', 'no-spin', 'help', 'io-binding', 'fixed-block', 'no-heal']),
  passes: new Set(['spin', 'no-spin', 'help']),
};


function reexecWithMallocTuning(): boolean {
  if (process.platform !== 'linux' || process.env.MALLOC_MMAP_THRESHOLD_ !== undefined || process.env.DEER_NO_REEXEC) return false;
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, ...MALLOC_ENV },
  });
  process.exitCode = r.status ?? 1;
  return true;
}

function readText(file: string, what: string): string {
  if (!existsSync(file)) throw new UsageError(`${what} not found: ${file}`);
  return readFileSync(file, 'utf8');
}

async function complete(o: Options): Promise<void> {
  const prefixFile = o.str('prefix-file');
  if (!prefixFile) throw new UsageError('--prefix-file is required');
  const prefix = readText(prefixFile, 'prefix file');
  const suffixFile = o.str('suffix-file');
  const suffix = suffixFile ? readText(suffixFile, 'suffix file') : '';
  const common = commonOptions(o);
  const drafterOpt = o.str('drafter');
  const req = {
    prefix,
    suffix,
    maxNewTokens: o.num('max-new-tokens', 64),
    blockSize: o.num('block-size'),
    // --fixed-block: full blocks; otherwise the engine's default (draft lengths from measured times,
    // except for seeded sampling, which they would make irreproducible)
    adaptiveBlock: o.flag('fixed-block') ? false : undefined,
    temperature: o.num('temperature', 0),
    topP: o.num('top-p', 1),
    seed: o.num('seed'),
    stop: o.str('stop') !== undefined ? [o.str('stop')!.replace(/\\n/g, '\n')] : undefined,
  };
  const compare = o.flag('compare');
  const json = o.flag('json');
  o.checkUnused();

  const engine = await Engine.load(common);
  for (const w of engine.info.warnings ?? []) process.stderr.write(`deer: warning: ${w}\n`);
  try {
    const spec = parseDrafterSpec(
      drafterOpt ?? (engine.info.drafters.includes('deer') ? 'deer+lookup-tree' : (engine.info.defaultDrafter ?? 'ngram')),
      engine.info.treeBudget ?? DEFAULT_TREE_BUDGET,
    );
    const drafted = { ...req, ...spec };
    let result;
    let baseline;
    if (compare && spec.drafter !== 'none') {
      // Same conditions for both: a short untimed warm-up each, an empty cache, no streaming.
      for (const r of [drafted, { ...req, drafter: 'none' as const }]) {
        engine.clearCache();
        await engine.complete({ ...r, maxNewTokens: Math.min(8, req.maxNewTokens) });
      }
      engine.clearCache();
      result = await engine.complete(drafted);
      engine.clearCache();
      baseline = await engine.complete({ ...req, drafter: 'none' });
      if (!json) process.stdout.write(result.text);
    } else {
      result = await engine.complete(drafted, json ? {} : { onChunk: (t) => process.stdout.write(t) });
    }
    for (const w of result.warnings ?? []) process.stderr.write(`deer: warning: ${w}\n`);
    const identical = baseline ? baseline.text === result.text : undefined;
    // No tokens (the model ended at once): no rate to compare.
    const measured = baseline && baseline.stats.tokensPerSecond > 0 ? result.stats.tokensPerSecond / baseline.stats.tokensPerSecond : undefined;
    if (json) {
      process.stdout.write(
        JSON.stringify({ model: engine.info.name, text: result.text, stopReason: result.stopReason, stats: result.stats, baseline: baseline?.stats, speedup: baseline ? (measured ?? null) : undefined, identical }, null, 2) + '\n',
      );
      return;
    }
    process.stdout.write('\n');
    process.stderr.write(`\n[${engine.info.name}] ${describeStats(result.stats)}\n`);
    if (baseline) {
      process.stderr.write(`[${engine.info.name}] ${describeStats(baseline.stats)}\n`);
      const speed =
        measured === undefined
          ? 'n/a (plain decoding wrote no tokens)'
          : `${measured.toFixed(2)}x measured (${result.stats.tokensPerSecond.toFixed(1)} vs ${baseline.stats.tokensPerSecond.toFixed(1)} tok/s)`;
      process.stderr.write(`speedup over plain decoding: ${speed}, output ${identical ? 'identical' : 'DIFFERENT'}\n`);
    }
  } finally {
    await engine.dispose();
  }
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const { command, options } = parseArgs(argv, FLAGS[argv[0]] ?? new Set(['help']));
    const o = new Options(options);
    if (command === undefined || o.flag('help') || command === 'help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (command === 'complete') await complete(o);
    else if (command === 'bench') await runBench(o);
    else if (command === 'passes') await runPasses(o);
    else throw new UsageError(`unknown command "${command}"`);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`deer: ${e.message}\n${USAGE}\n`);
      return 2;
    }
    if (e instanceof ModelFolderError) {
      process.stderr.write(`deer: model folder error: ${e.message}\n`);
      return 1;
    }
    process.stderr.write(`deer: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

if (require.main === module || process.argv[1]?.endsWith('deer.js')) {
  if (!reexecWithMallocTuning()) {
    main(process.argv.slice(2)).then((code) => {
      process.exitCode = code;
    });
  }
}
