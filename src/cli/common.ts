// What the CLI commands and the benchmarks share: where the package and its default model are,
// common options, percentiles. Imports only the engine's API (the editor benchmarks bundle this
// without the engine itself).
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { DRAFTER_NAMES, type DrafterName, type RunStats } from '../engine/api';
import { Options, parseArgs, UsageError } from './args';

/** The package root (dist/cli.js lives in dist/). */
export const ROOT = resolve(__dirname, '..');
export const DEFAULT_MODEL = resolve(ROOT, 'models', 'default');

export interface CommonOptions {
  modelDir: string;
  threads?: number;
  /** undefined: the engine's default (defaultSpinning). */
  spinning?: boolean;
  ioBinding: boolean;
  /** Prompt-lookup continuations per draft tree (EngineLoadOptions.lookupTreeBranches). */
  lookupTreeBranches?: number;
}

export function commonOptions(o: Options): CommonOptions {
  const branches = o.num('lookup-branches');
  if (branches !== undefined && !(Number.isInteger(branches) && branches >= 1)) throw new UsageError(`--lookup-branches must be a whole number of at least 1, got ${branches}`);
  return {
    modelDir: resolve(o.str('model', DEFAULT_MODEL)),
    threads: o.num('threads'),
    spinning: spinningOption(o),
    ioBinding: o.flag('io-binding'),
    lookupTreeBranches: branches,
  };
}

/** --spin / --no-spin; neither: undefined (the engine's defaultSpinning). */
export function spinningOption(o: Options): boolean | undefined {
  return o.flag('spin') ? true : o.flag('no-spin') ? false : undefined;
}

export function drafterName(s: string): DrafterName {
  if (!(DRAFTER_NAMES as readonly string[]).includes(s)) throw new UsageError(`unknown drafter "${s}" (${DRAFTER_NAMES.join(', ')})`);
  return s as DrafterName;
}

/**
 * A drafter as the CLI spells it: 'deer+lookup' = deer with prompt lookup, '-tree' = draft trees of
 * defaultBudget nodes, '-tree@N' = of N nodes (the extension's default is deer+lookup-tree).
 */
export interface DrafterSpec {
  drafter: DrafterName;
  lookup: boolean;
  /** 0: chains. */
  treeBudget: number;
}

export function parseDrafterSpec(name: string, defaultBudget: number): DrafterSpec {
  const tree = /-tree(?:@(\d+))?$/.exec(name);
  if (tree && tree[1] !== undefined && !(Number(tree[1]) >= 1)) throw new UsageError(`"${name}": a tree budget is a whole number of nodes, at least 1`);
  const base = tree ? name.slice(0, tree.index) : name;
  const drafter = drafterName(base.replace(/\+lookup$/, ''));
  const lookup = base.endsWith('+lookup');
  if ((lookup || tree) && drafter !== 'deer') throw new UsageError(`"${name}": prompt lookup and draft trees go with the deer drafter only`);
  return { drafter, lookup, treeBudget: tree ? Number(tree[1] ?? defaultBudget) : 0 };
}

export function describeStats(s: RunStats): string {
  return (
    `${s.drafter}: ${s.newTokens} tokens in ${s.passes} passes, ${s.tokensPerSecond.toFixed(1)} tok/s, ` +
    `mean accepted ${s.meanAccepted.toFixed(2)}, draft ${s.draftMs.toFixed(0)} ms, verify ${s.verifyMs.toFixed(0)} ms, ` +
    `prefill ${s.prefillMs.toFixed(0)} ms (${s.reusedTokens}/${s.promptTokens} reused), est. speedup ${s.estimatedSpeedup.toFixed(2)}x`
  );
}


/** A deterministic generator of numbers in [0, 1) (a benchmark's choices repeat run to run). */
export function seededRandom(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

/** Nearest-rank percentile p (0-100) of `values` (any order); null when there are none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/**
 * A benchmark script's options (`node dist/bench-x.js --name value --flag`), as `read` takes them;
 * a usage error (a bad value, an option nobody reads) is printed and exits 2.
 */
export function scriptOptions<T>(argv: readonly string[], flags: readonly string[], read: (o: Options) => T): T {
  try {
    const { command, options } = parseArgs(argv, new Set(flags));
    if (command !== undefined) throw new UsageError(`unexpected argument: ${command}`);
    const o = new Options(options);
    const value = read(o);
    o.checkUnused();
    return value;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(e.message);
    process.exit(2);
  }
}

/** A benchmark's results: `${out}.json` (the data) and `${out}.md` (the tables), the tables also printed. */
export function writeReport(out: string, data: unknown, markdown: string): void {
  writeFileSync(`${out}.json`, JSON.stringify(data, null, 2) + '\n');
  writeFileSync(`${out}.md`, markdown);
  console.log(markdown);
}

/** Runs a script's main: a failure prints its message (`name: ...`) and exits 1. */
export function runScript(name: string, main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    process.stderr.write(`${name}: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
