// A two-panel SVG chart of a benchmark: tokens/s per drafter, and how many drafted tokens each
// verifier pass accepted (share of passes). Hand-written SVG, no chart library.

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

export function renderChart(title: string, series: readonly ChartSeries[]): string {
  const W = 960;
  const H = 420;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${W / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);

  // Left panel: tokens/s bars.
  const L = { x: 70, y: 60, w: 360, h: 300 };
  const maxTps = niceMax(Math.max(...series.map((s) => s.tokensPerSecond), 1));
  out.push(`<text x="${L.x + L.w / 2}" y="${L.y - 14}" text-anchor="middle" font-weight="bold">Decoding speed (tokens/s)</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (maxTps * i) / 5;
    const y = L.y + L.h - (L.h * i) / 5;
    out.push(`<line x1="${L.x}" y1="${y}" x2="${L.x + L.w}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${L.x - 6}" y="${y + 4}" text-anchor="end" fill="#555">${+v.toFixed(1)}</text>`);
  }
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
  out.push(`<line x1="${L.x}" y1="${L.y + L.h}" x2="${L.x + L.w}" y2="${L.y + L.h}" stroke="#333"/>`);

  // Right panel: accepted-length distribution (share of passes), one line per drafter.
  const R = { x: 530, y: 60, w: 380, h: 300 };
  const drafted = series.filter((s) => s.drafter !== 'none');
  const maxLen = Math.max(1, ...drafted.map((s) => s.histogram.length - 1));
  const shares = drafted.map((s) => {
    const total = s.histogram.reduce((a, b) => a + b, 0) || 1;
    return s.histogram.map((c) => c / total);
  });
  const maxShare = niceMax(Math.max(0.05, ...shares.flat()));
  out.push(`<text x="${R.x + R.w / 2}" y="${R.y - 14}" text-anchor="middle" font-weight="bold">Drafted tokens accepted per pass (share of passes)</text>`);
  for (let i = 0; i <= 5; i++) {
    const v = (maxShare * i) / 5;
    const y = R.y + R.h - (R.h * i) / 5;
    out.push(`<line x1="${R.x}" y1="${y}" x2="${R.x + R.w}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${R.x - 6}" y="${y + 4}" text-anchor="end" fill="#555">${Math.round(v * 100)}%</text>`);
  }
  const xOf = (n: number) => R.x + (R.w * n) / maxLen;
  const step = maxLen > 16 ? 4 : maxLen > 8 ? 2 : 1;
  for (let n = 0; n <= maxLen; n += step) {
    out.push(`<text x="${xOf(n)}" y="${R.y + R.h + 18}" text-anchor="middle" fill="#555">${n}</text>`);
  }
  out.push(`<line x1="${R.x}" y1="${R.y + R.h}" x2="${R.x + R.w}" y2="${R.y + R.h}" stroke="#333"/>`);
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
