// `deer passes`: the verifier's per-pass time by cached length and tokens per pass, with and
// without IO binding: the numbers behind docs/engine.md's "Per-pass floor"; and, where the model has
// a DEER drafter, its pass against the verifier's pass over the block it drafts.
import { defaultSpinning, defaultThreads } from '../engine';
import { DiffusionDrafter } from '../engine/drafters/diffusion';
import { ModelSpec, readModelFolder } from '../engine/modelFolder';
import { DeerTokenizer } from '../engine/tokenizer';
import { DecoderSession } from '../engine/verifier';
import { Options } from './args';
import { commonOptions } from './common';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function runPasses(o: Options): Promise<void> {
  const common = commonOptions(o);
  const pasts = (o.str('pasts', '64,256,512,1024')).split(',').map(Number);
  const qs = (o.str('q', '1,4,8,16,32')).split(',').map(Number);
  const reps = o.num('reps', 9);
  const modes = (o.str('modes', 'plain,bound')).split(',');
  o.checkUnused();
  const spec = readModelFolder(common.modelDir);
  const threads = common.threads ?? defaultThreads(spec);
  const spinning = common.spinning ?? defaultSpinning(threads);
  process.stdout.write(
    `${spec.name}: ms per verifier pass (median of ${reps}), ${threads} threads, spinning ${spinning}, ` +
      `MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_ ?? 'unset'}\n\n`,
  );
  process.stdout.write(`| outputs | past | ${qs.map((q) => `q=${q}`).join(' | ')} | rollback ms |\n|---|---:|${qs.map(() => '---:').join('|')}|---:|\n`);
  // Both sessions are measured turn by turn, so load from other processes hits them alike.
  const sessions = await Promise.all(
    modes.map((mode) =>
      DecoderSession.create(spec.verifier.file, spec.verifier, {
        threads,
        spinning,
        vocabSize: spec.vocabSize,
        maxPositions: spec.maxPositions,
        bind: mode === 'bound',
      }),
    ),
  );
  const ids = Array.from({ length: Math.max(...pasts) + Math.max(...qs) + 1 }, (_, i) => (i * 31 + 7) % Math.min(spec.vocabSize, 1000));
  for (const past of pasts) {
    if (past + Math.max(...qs) > spec.maxPositions) continue;
    for (const s of sessions) await s.prefill(ids.slice(0, past));
    const times = sessions.map(() => qs.map((): number[] => []));
    const rollbacks = sessions.map((): number[] => []);
    for (let r = 0; r < reps + 1; r++) {
      for (const [qi, q] of qs.entries()) {
        for (const [si, s] of sessions.entries()) {
          const t0 = performance.now();
          await s.forward(ids.slice(past, past + q));
          const t1 = performance.now();
          s.rollback(past + Math.floor(q / 2)); // a typical partial acceptance
          rollbacks[si].push(performance.now() - t1);
          s.rollback(past);
          if (r > 0) times[si][qi].push(t1 - t0);
        }
      }
    }
    for (const [si, mode] of modes.entries()) {
      process.stdout.write(`| ${mode} | ${past} | ${times[si].map((t) => median(t).toFixed(2)).join(' | ')} | ${median(rollbacks[si]).toFixed(3)} |\n`);
    }
  }
  for (const s of sessions) await s.dispose();
  if (spec.deer) await drafterPasses(spec, threads, spinning, pasts, reps, ids);
}

/**
 * The drafter's whole draft (its pass, the hidden states fed in, the argmax over the block) against
 * the verifier's pass over [pending, block], measured turn by turn at each cached length.
 */
async function drafterPasses(spec: ModelSpec, threads: number, spinning: boolean, pasts: number[], reps: number, ids: number[]): Promise<void> {
  const deer = spec.deer!;
  const k = deer.blockSize;
  const tokenizer = new DeerTokenizer(spec);
  const hidden = deer.conditioning.includes('hidden') ? spec.verifier.hiddenStates : undefined;
  const verifier = await DecoderSession.create(spec.verifier.file, spec.verifier, {
    threads,
    spinning,
    vocabSize: spec.vocabSize,
    maxPositions: spec.maxPositions,
    hiddenOutput: hidden?.output,
    hiddenSize: hidden?.size,
  });
  const drafter = await DiffusionDrafter.create(deer, {
    threads,
    spinning,
    maskId: tokenizer.special.mask!,
    eosId: [...tokenizer.special.eos][0],
    vocabSize: spec.vocabSize,
    hiddenSize: hidden?.size ?? 0,
  });
  process.stdout.write(`\n| past | deer draft of ${k} ms | verifier pass of ${k + 1} ms | one-token pass ms | draft / block pass |\n|---:|---:|---:|---:|---:|\n`);
  for (const past of pasts) {
    if (past + k + 1 > spec.maxPositions) continue;
    await verifier.prefill(ids.slice(0, past));
    const ctx = {
      tokens: ids.slice(0, past + 1),
      promptLength: past + 1,
      suffixIds: [],
      hiddenAt: verifier.hiddenSize > 0 ? (pos: number) => verifier.hiddenAt(pos) : undefined,
      temperature: 0,
      topP: 1,
      rng: Math.random,
      candidates: 0,
    };
    const draftMs: number[] = [];
    const blockMs: number[] = [];
    const oneMs: number[] = [];
    for (let r = 0; r < reps + 1; r++) {
      const t0 = performance.now();
      await drafter.draft(ctx, k);
      const t1 = performance.now();
      await verifier.forward(ids.slice(past, past + k + 1));
      const t2 = performance.now();
      verifier.rollback(past);
      await verifier.forward(ids.slice(past, past + 1));
      const t3 = performance.now();
      verifier.rollback(past);
      if (r === 0) continue;
      draftMs.push(t1 - t0);
      blockMs.push(t2 - t1);
      oneMs.push(t3 - t2);
    }
    const [d, b, o] = [median(draftMs), median(blockMs), median(oneMs)];
    process.stdout.write(`| ${past} | ${d.toFixed(2)} | ${b.toFixed(2)} | ${o.toFixed(2)} | ${(d / b).toFixed(2)} |\n`);
  }
  await drafter.dispose();
  await verifier.dispose();
}
