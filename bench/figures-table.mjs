// Prints the figures table (docs/engine.md, "Benchmark figures") from the bench JSON files.
//   node bench/figures-table.mjs bench/mbpp-ts-reworded.json bench/mbpp-py-reworded.json
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const rows = ['| prompts | drafter | tokens/s | mean accepted | speedup | identical | p50 ms | p95 ms |', '|---|---|---:|---:|---:|:---:|---:|---:|'];
for (const file of process.argv.slice(2)) {
  const r = JSON.parse(readFileSync(file, 'utf8'));
  const name = `${basename(file, '.json')} (${r.config.prompt_count})`;
  for (const [d, x] of Object.entries(r.results)) {
    const ident = x.identical === null ? 'n/a' : x.identical ? 'yes' : `no (${x.prompts_identical}/${r.config.prompt_count})`;
    rows.push(`| ${name} | ${d} | ${x.tokens_per_s.toFixed(1)} | ${x.mean_accepted.toFixed(2)} | ${x.speedup === null ? 'n/a' : x.speedup.toFixed(2) + 'x'} | ${ident} | ${x.p50_ms.toFixed(0)} | ${x.p95_ms.toFixed(0)} |`);
  }
}
console.log(rows.join('\n'));
