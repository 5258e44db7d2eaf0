// Recent completions and how they went: feeds the status bar text and the stats view.
// Pure (no 'vscode').
import type { DrafterName, RunStats } from '../engine/api';

export interface CompletionRecord {
  kind: 'inline' | 'generate';
  /** When it finished (ms since epoch). */
  at: number;
  /** Request to result, as the user waited for it (debounce excluded). */
  latencyMs: number;
  stats: RunStats;
}

export class StatsHistory {
  private readonly records: CompletionRecord[] = [];
  constructor(private readonly capacity = 200) {}

  add(record: CompletionRecord): void {
    this.records.push(record);
    if (this.records.length > this.capacity) this.records.splice(0, this.records.length - this.capacity);
  }
  /** The last run that decoded at least one token. */
  get last(): CompletionRecord | undefined {
    for (let i = this.records.length - 1; i >= 0; i--) if (informative(this.records[i])) return this.records[i];
    return undefined;
  }
  all(): readonly CompletionRecord[] {
    return this.records;
  }
}

/** Runs that say something about speed: at least one new token decoded. */
export const informative = (r: CompletionRecord): boolean => r.stats.newTokens > 0;

/** Speedup and tokens/s over the recent informative runs (token-weighted). */
export function summarize(records: readonly CompletionRecord[], window = 20): { speedup: number; tokensPerSecond: number; meanAccepted: number } | undefined {
  const recent = records.filter(informative).slice(-window);
  if (recent.length === 0) return undefined;
  let tokens = 0;
  let decodeMs = 0;
  let passes = 0;
  let speedupWeighted = 0;
  for (const r of recent) {
    tokens += r.stats.newTokens;
    decodeMs += r.stats.decodeMs;
    passes += r.stats.passes;
    speedupWeighted += r.stats.estimatedSpeedup * r.stats.newTokens;
  }
  return {
    speedup: speedupWeighted / tokens,
    tokensPerSecond: decodeMs > 0 ? (tokens / decodeMs) * 1000 : 0,
    meanAccepted: tokens / Math.max(1, passes),
  };
}

export type UiState = 'loading' | 'ready' | 'disabled' | 'error';

export interface StatusView {
  state: UiState;
  text: string;
  tooltip: string;
  error?: string;
}

export interface StatusInput {
  state: UiState;
  error?: string;
  model?: string;
  drafter: DrafterName;
  records: readonly CompletionRecord[];
}

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '–');
/** Speedup with one decimal, two below 1 (0.03x must not read as 0.0x). */
const fmtSpeedup = (x: number): string => fmt(x, x > 0 && x < 1 ? 2 : 1);

/** The status bar item: text (with codicons) and tooltip for a state and the recent runs. */
export function statusView(input: StatusInput): StatusView {
  const { state, model, drafter, records } = input;
  const modelLine = `Model: ${model ?? '(not loaded)'}\nDrafter: ${drafter}`;
  switch (state) {
    case 'loading':
      return { state, text: '$(loading~spin) DEER', tooltip: `DEER: loading the model…\n${modelLine}` };
    case 'disabled':
      return { state, text: '$(circle-slash) DEER', tooltip: `DEER: inline completion is off (DEER: Toggle Inline Completion)\n${modelLine}` };
    case 'error':
      return {
        state,
        text: '$(error) DEER',
        tooltip: `DEER: ${input.error ?? 'error'}\nClick for details; "DEER: Choose Model Folder…" to fix the model folder.`,
        error: input.error ?? 'error',
      };
    case 'ready': {
      const sum = summarize(records);
      const last = [...records].reverse().find(informative);
      if (!sum || !last) return { state, text: '$(zap) DEER', tooltip: `DEER: ready\n${modelLine}\nClick for speedup stats.` };
      const tooltip = [
        `DEER: ${fmtSpeedup(sum.speedup)}x estimated speedup over plain decoding (last ${Math.min(20, records.filter(informative).length)} runs)`,
        `Mean accepted length: ${fmt(sum.meanAccepted, 2)} tokens per verifier pass`,
        `Throughput: ${Math.round(sum.tokensPerSecond)} tok/s`,
        modelLine,
        `Last: ${last.kind}, ${Math.round(last.latencyMs)} ms, ${last.stats.newTokens} tokens (${last.stats.drafter})`,
        'Click for speedup stats.',
      ].join('\n');
      return { state, text: `$(zap) ${fmtSpeedup(sum.speedup)}x · ${Math.round(sum.tokensPerSecond)} tok/s`, tooltip };
    }
  }
}

/** What the stats view draws: series of recent runs and per-drafter aggregates. */
export interface StatsViewData {
  model?: string;
  runs: { at: number; kind: string; drafter: DrafterName; speedup: number; tokensPerSecond: number; latencyMs: number; newTokens: number; meanAccepted: number }[];
  /** acceptedHistogram summed over runs, per drafter. */
  histograms: Record<string, number[]>;
  perDrafter: { drafter: DrafterName; runs: number; speedup: number; tokensPerSecond: number; meanAccepted: number }[];
}

export function statsViewData(records: readonly CompletionRecord[], model?: string): StatsViewData {
  const useful = records.filter(informative);
  const histograms: Record<string, number[]> = {};
  const groups = new Map<DrafterName, CompletionRecord[]>();
  for (const r of useful) {
    const h = (histograms[r.stats.drafter] ??= []);
    r.stats.acceptedHistogram.forEach((n, i) => (h[i] = (h[i] ?? 0) + n));
    for (let i = 0; i < h.length; i++) h[i] ??= 0;
    groups.set(r.stats.drafter, [...(groups.get(r.stats.drafter) ?? []), r]);
  }
  return {
    model,
    runs: useful.map((r) => ({
      at: r.at, kind: r.kind, drafter: r.stats.drafter, speedup: r.stats.estimatedSpeedup, tokensPerSecond: r.stats.tokensPerSecond,
      latencyMs: r.latencyMs, newTokens: r.stats.newTokens, meanAccepted: r.stats.meanAccepted,
    })),
    histograms,
    perDrafter: [...groups].map(([drafter, rs]) => ({ drafter, runs: rs.length, ...(summarize(rs, rs.length) as ReturnType<typeof summarize> & object) })),
  };
}
