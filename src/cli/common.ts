// What the CLI commands share: where the package and its default model are, common options.
import { resolve } from 'node:path';
import { DRAFTER_NAMES, DrafterName, RunStats } from '../engine';
import { Options, UsageError } from './args';

/** The package root (dist/cli.js lives in dist/). */
export const ROOT = resolve(__dirname, '..');
export const DEFAULT_MODEL = resolve(ROOT, 'models', 'default');

export interface CommonOptions {
  modelDir: string;
  threads?: number;
  spinning: boolean;
  ioBinding: boolean;
}

export function commonOptions(o: Options): CommonOptions {
  return {
    modelDir: resolve(o.str('model', DEFAULT_MODEL)),
    threads: o.num('threads'),
    spinning: !o.flag('no-spin'),
    ioBinding: o.flag('io-binding'),
  };
}

export function drafterName(s: string): DrafterName {
  if (!(DRAFTER_NAMES as readonly string[]).includes(s)) throw new UsageError(`unknown drafter "${s}" (${DRAFTER_NAMES.join(', ')})`);
  return s as DrafterName;
}

export function describeStats(s: RunStats): string {
  return (
    `${s.drafter}: ${s.newTokens} tokens in ${s.passes} passes, ${s.tokensPerSecond.toFixed(1)} tok/s, ` +
    `mean accepted ${s.meanAccepted.toFixed(2)}, draft ${s.draftMs.toFixed(0)} ms, verify ${s.verifyMs.toFixed(0)} ms, ` +
    `prefill ${s.prefillMs.toFixed(0)} ms (${s.reusedTokens}/${s.promptTokens} reused), est. speedup ${s.estimatedSpeedup.toFixed(2)}x`
  );
}

