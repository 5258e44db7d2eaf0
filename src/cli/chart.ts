// Two-panel SVG charts of a benchmark: tokens/s per drafter, and how many drafted tokens each
// verifier pass accepted (share of passes); and, for a sweep of draft-tree node budgets, accepted
// length and speedup by budget. Hand-written SVG, no chart library.
import type { BudgetSweep } from './bench';

export interface ChartSeries {
  drafter: string;
  tokensPerSecond: number;
  speedup: number | null;
  meanAccepted: number;
  /** histogram[n] = passes that accepted n drafted tokens. */
  histogram: number[];
}

const COLORS: Record<string, string> = { none: '#8c8c8c', ngram: '#e39b2d', ar: '#4a7fc1', deer: '#2e9c5a', 'deer+lookup': '#8a4fbf' };
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

const W = 960;
const H = 420;

function open(out: string[], title: string): void {
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
}

/** A panel's title, horizontal grid lines and y labels from 0 to `max`. */
function grid(out: string[], P: { x: number; y: number; w: number; h: number }, title: string, max: number, label: (v: number) => string): void {
  out.push(`<text x="${P.x + P.w / 2}" y="${P.y - 14}" text-anchor="middle" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    const y = P.y + P.h - (P.h * i) / 5;
    out.push(`<line x1="${P.x}" y1="${y}" x2="${P.x + P.w}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${P.x - 6}" y="${y + 4}" text-anchor="end" fill="#555">${label(v)}</text>`);
  }
  out.push(`<line x1="${P.x}" y1="${P.y + P.h}" x2="${P.x + P.w}" y2="${P.y + P.h}" stroke="#333"/>`);
}

export function renderChart(title: string, series: readonly ChartSeries[]): string {
  const out: string[] = [];
  open(out, title);

  // Left panel: tokens/s bars.
  const L = { x: 70, y: 60, w: 360, h: 300 };
  const maxTps = niceMax(Math.max(...series.map((s) => s.tokensPerSecond), 1));
  grid(out, L, 'Decoding speed (tokens/s)', maxTps, (v) => `${+v.toFixed(1)}`);
  const slot = L.w / Math.max(1, series.length);
  series.forEach((s, i) => {
    const bh = (L.h * s.tokensPerSecond) / maxTps;
    const x = L.x + i * slot + slot * 0.2;
    const y = L.y + L.h - bh;
    out.push(`<rect x="${x}" y="${y}" width="${slot * 0.6}" height="${bh}" fill="${COLORS[s.drafter] ?? '#666'}"/>`);
    const label = `${s.tokensPerSecond.toFixed(1)}${s.speedup !== null ? ` (${s.speedup.toFixed(2)}x)` : ''}`;
    const size = series.length > 4 ? 10 : 12;
    out.push(`<text x="${x + slot * 0.3}" y="${y - 5}" text-anchor="middle" font-size="${size}">${esc(label)}</text>`);
    out.push(`<text x="${x + slot * 0.3}" y="${L.y + L.h + 18}" text-anchor="middle" font-weight="bold">${esc(s.drafter)}</text>`);
  });

  // Right panel: accepted-length distribution (share of passes), one line per drafter.
  const R = { x: 530, y: 60, w: 380, h: 300 };
  const drafted = series.filter((s) => s.drafter !== 'none');
  const maxLen = Math.max(1, ...drafted.map((s) => s.histogram.length - 1));
  const shares = drafted.map((s) => {
    const total = s.histogram.reduce((a, b) => a + b, 0) || 1;
    return s.histogram.map((c) => c / total);
  });
  const maxShare = niceMax(Math.max(0.05, ...shares.flat()));
  grid(out, R, 'Drafted tokens accepted per pass (share of passes)', maxShare, (v) => `${Math.round(v * 100)}%`);
  const xOf = (n: number) => R.x + (R.w * n) / maxLen;
  const step = maxLen > 16 ? 4 : maxLen > 8 ? 2 : 1;
  for (let n = 0; n <= maxLen; n += step) {
    out.push(`<text x="${xOf(n)}" y="${R.y + R.h + 18}" text-anchor="middle" fill="#555">${n}</text>`);
  }
  drafted.forEach((s, i) => {
    const pts = shares[i].map((v, n) => `${xOf(n).toFixed(1)},${(R.y + R.h - (R.h * v) / maxShare).toFixed(1)}`);
    const color = COLORS[s.drafter] ?? '#666';
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of pts) {
      const [cx, cy] = p.split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="2.5" fill="${color}"/>`);
    }
    const ly = R.y + 12 + i * 16;
    out.push(`<rect x="${R.x + R.w - 195}" y="${ly - 9}" width="12" height="10" fill="${color}"/>`);
    out.push(`<text x="${R.x + R.w - 177}" y="${ly}" font-size="11">${esc(`${s.drafter}: mean ${s.meanAccepted.toFixed(2)} tok/pass`)}</text>`);
  });
  out.push(`<text x="${R.x + R.w / 2}" y="${R.y + R.h + 36}" text-anchor="middle" fill="#555">drafted tokens accepted in one verifier pass</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/**
 * Accepted length (left) and measured speedup over none (right) by draft-tree node budget, one
 * line per drafter on a log-2 budget axis; each drafter's chain is its dashed line.
 */
export function renderBudgetChart(title: string, sweep: BudgetSweep): string {
  const out: string[] = [];
  open(out, title);
  const names = Object.keys(sweep);
  const budgets = [...new Set(names.flatMap((d) => sweep[d].map((p) => p.budget).filter((b): b is number => b !== null)))].sort((a, b) => a - b);
  const lo = Math.log2(budgets[0] ?? 1);
  const hi = Math.max(lo + 1, Math.log2(budgets[budgets.length - 1] ?? 2));
  const panels: { P: { x: number; y: number; w: number; h: number }; title: string; value: (p: BudgetSweep[string][number]) => number | null; label: (v: number) => string }[] = [
    { P: { x: 70, y: 60, w: 360, h: 300 }, title: 'Mean tokens accepted per pass', value: (p) => p.mean_accepted, label: (v) => `${+v.toFixed(2)}` },
    { P: { x: 550, y: 60, w: 360, h: 300 }, title: 'Speedup over none (measured)', value: (p) => p.speedup, label: (v) => `${+v.toFixed(2)}x` },
  ];
  for (const { P, title: panelTitle, value, label } of panels) {
    const max = niceMax(Math.max(1, ...names.flatMap((d) => sweep[d].map(value).filter((v): v is number => v !== null))));
    grid(out, P, panelTitle, max, label);
    const xOf = (b: number) => P.x + (P.w * (Math.log2(b) - lo)) / (hi - lo);
    const yOf = (v: number) => P.y + P.h - (P.h * v) / max;
    for (const b of budgets) out.push(`<text x="${xOf(b).toFixed(1)}" y="${P.y + P.h + 18}" text-anchor="middle" fill="#555">${b}</text>`);
    out.push(`<text x="${P.x + P.w / 2}" y="${P.y + P.h + 36}" text-anchor="middle" fill="#555">draft-tree node budget (most nodes per pass)</text>`);
    names.forEach((d, i) => {
      const color = COLORS[d] ?? '#666';
      const chain = sweep[d].find((p) => p.budget === null);
      const chainValue = chain ? value(chain) : null;
      if (chainValue !== null) {
        out.push(`<line x1="${P.x}" y1="${yOf(chainValue).toFixed(1)}" x2="${P.x + P.w}" y2="${yOf(chainValue).toFixed(1)}" stroke="${color}" stroke-dasharray="5,4"/>`);
      }
      const pts = sweep[d].flatMap((p) => {
        const v = value(p);
        return p.budget === null || v === null ? [] : [[xOf(p.budget), yOf(v)]];
      });
      out.push(`<polyline points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}" fill="none" stroke="${color}" stroke-width="2"/>`);
      for (const [x, y] of pts) out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3" fill="${color}"/>`);
      const ly = P.y + 12 + i * 16;
      out.push(`<rect x="${P.x + 8}" y="${ly - 9}" width="12" height="10" fill="${color}"/>`);
      out.push(`<text x="${P.x + 26}" y="${ly}" font-size="11">${esc(`${d}-tree (dashed: ${d} chain${chainValue !== null ? ` ${label(chainValue)}` : ''})`)}</text>`);
    });
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
