// Per-run statistics and the single-token pass-time model used to estimate speedup over plain decoding.
import { emptyStats, type DrafterName, type RunStats } from './api';

/**
 * Verifier pass time: a single-token pass costs a + b * past milliseconds (fitted at load, kept
 * current by plain passes); a pass of q tokens costs ratio(q) times that (ratio(1) = 1, learned
 * from the passes run, starting from a straight line in q).
 */
export class PassTimeModel {
  private readonly ratios: number[] = [];

  constructor(
    public a = 0,
    public b = 0,
    /** Initial extra cost per additional token in a pass, relative to a single-token pass. */
    public slope = 0.03,
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

  /** A pass of q > 1 tokens took `ms` at cached length `past`. */
  observePass(q: number, past: number, ms: number, weight = 0.1): void {
    if (q <= 1 || !this.calibrated) return;
    const r = Math.max(1, ms / this.predict(past));
    this.ratios[q] = this.ratios[q] === undefined ? r : this.ratios[q] + weight * (r - this.ratios[q]);
  }

  /** Single-token pass time at cached length `past`. */
  predict(past: number): number {
    return this.a + this.b * past;
  }

  ratio(q: number): number {
    return q <= 1 ? 1 : (this.ratios[q] ?? 1 + this.slope * (q - 1));
  }

  /** Expected time of a verifier pass of q tokens at cached length `past`. */
  passMs(q: number, past: number): number {
    return this.predict(past) * this.ratio(q);
  }

  get calibrated(): boolean {
    return this.a > 0;
  }
}

/**
 * How often a drafted token the drafter gave probability c is accepted, learned per drafter from
 * the passes run (10 bins, each starting from a weak prior at c itself). Raw drafter confidence
 * is a poor acceptance estimate: a small drafter unsure between tokens often still picks the
 * verifier's choice.
 */
export class AcceptanceCalibration {
  private readonly hits = new Float64Array(10);
  private readonly trials = new Float64Array(10);

  private bin(c: number): number {
    return Math.min(9, Math.max(0, Math.floor(c * 10)));
  }

  /** Estimated acceptance probability of a token drafted with confidence c. */
  p(c: number): number {
    const b = this.bin(c);
    const prior = 2;
    return (this.hits[b] + prior * c) / (this.trials[b] + prior);
  }

  /** After a pass: the first `accepted` tokens were kept, the next one (if drafted) was not. */
  observe(confidence: readonly number[], drafted: number, accepted: number): void {
    const seen = Math.min(confidence.length, drafted, accepted + 1);
    for (let i = 0; i < seen; i++) {
      const b = this.bin(confidence[i]);
      this.trials[b]++;
      if (i < accepted) this.hits[b]++;
    }
  }
}

export class StatsRecorder {
  readonly stats: RunStats;
  /** Estimated plain-decoding time of the tokens generated so far. */
  private plainMs = 0;

  constructor(drafter: DrafterName, promptTokens: number, reusedTokens: number) {
    this.stats = { ...emptyStats(drafter), promptTokens, reusedTokens };
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
