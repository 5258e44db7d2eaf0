// `deer passes`: the verifier's per-pass time by cached length and tokens per pass, with and
// without IO binding: the numbers behind docs/engine.md's "Per-pass floor".
import { defaultThreads } from '../engine';
import { readModelFolder } from '../engine/modelFolder';
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
  process.stdout.write(
    `${spec.name}: ms per verifier pass (median of ${reps}), ${threads} threads, spinning ${common.spinning}, ` +
      `MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_ ?? 'unset'}\n\n`,
  );
  process.stdout.write(`| outputs | past | ${qs.map((q) => `q=${q}`).join(' | ')} | rollback ms |\n|---|---:|${qs.map(() => '---:').join('|')}|---:|\n`);
  // Both sessions are measured turn by turn, so load from other processes hits them alike.
  const sessions = await Promise.all(
    modes.map((mode) =>
      DecoderSession.create(spec.verifier.file, spec.verifier, {
        threads,
        spinning: common.spinning,
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
}
