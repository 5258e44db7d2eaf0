// Per-run statistics and the single-token pass-time model used to estimate speedup over plain decoding.
import type { DrafterName, RunStats } from './api';

/** Time of one single-token verifier pass as a function of the cached length: a + b * past. */
export class PassTimeModel {
  constructor(
    public a = 0,
    public b = 0,
  ) {}

  /** Least-squares fit to (past, ms) samples. */
  fit(samples: readonly { past: number; ms: number }[]): void {
    if (samples.length === 0) return;
    const n = samples.length;
    const mx = samples.reduce((s, x) => s + x.past, 0) / n;
    const my = samples.reduce((s, x) => s + x.ms, 0) / n;
    let sxy = 0;
    let sxx = 0;
    for (const { past, ms } of samples) {
      sxy += (past - mx) * (ms - my);
      sxx += (past - mx) ** 2;
    }
    this.b = sxx > 0 ? Math.max(0, sxy / sxx) : 0;
    this.a = Math.max(0.01, my - this.b * mx);
  }

  /** Nudges the model toward an observed single-token pass (EMA on the intercept). */
  observe(past: number, ms: number, weight = 0.1): void {
    const predicted = this.predict(past);
    this.a = Math.max(0.01, this.a + weight * (ms - predicted));
  }

  predict(past: number): number {
    return this.a + this.b * past;
  }

  get calibrated(): boolean {
    return this.a > 0;
  }
}

export class StatsRecorder {
  readonly stats: RunStats;
  /** Estimated plain-decoding time of the tokens generated so far. */
  private plainMs = 0;

  constructor(drafter: DrafterName, promptTokens: number, reusedTokens: number) {
    this.stats = {
      drafter,
      promptTokens,
      reusedTokens,
      newTokens: 0,
      passes: 0,
      acceptedHistogram: [],
      meanAccepted: 0,
      prefillMs: 0,
      draftMs: 0,
      verifyMs: 0,
      decodeMs: 0,
      totalMs: 0,
      tokensPerSecond: 0,
      estimatedSpeedup: 0,
    };
  }

  /** One verifier pass that accepted `accepted` drafted tokens and yielded `yielded` new tokens. */
  pass(accepted: number, yielded: number, draftMs: number, verifyMs: number, plainEstimateMs: number): void {
    const s = this.stats;
    s.passes++;
    while (s.acceptedHistogram.length <= accepted) s.acceptedHistogram.push(0);
    s.acceptedHistogram[accepted]++;
    s.newTokens += yielded;
    s.draftMs += draftMs;
    s.verifyMs += verifyMs;
    this.plainMs += plainEstimateMs;
  }

  finish(decodeMs: number, totalMs: number): RunStats {
    const s = this.stats;
    s.decodeMs = decodeMs;
    s.totalMs = totalMs;
    s.meanAccepted = s.passes > 0 ? s.newTokens / s.passes : 0;
    s.tokensPerSecond = decodeMs > 0 ? (s.newTokens * 1000) / decodeMs : 0;
    s.estimatedSpeedup = decodeMs > 0 && this.plainMs > 0 ? this.plainMs / decodeMs : 0;
    return s;
  }
}
