// The deer CLI end to end: complete (text and --json) and bench (JSON, Markdown, SVG, outputs).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { CONDITIONED_MODEL, DEFAULT_MODEL, hasModel, promptsFile, ROOT, TINY_MODEL } from './support';

const MODEL = hasModel(TINY_MODEL) ? TINY_MODEL : CONDITIONED_MODEL;
const BIN = resolve(ROOT, 'bin', 'deer.js');
const deer = (args: string[]) => execFileSync(process.execPath, [BIN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('deer CLI', { skip: (!existsSync(resolve(ROOT, 'dist', 'cli.js')) || !hasModel(MODEL)) && 'not built or no model' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'deer-cli-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('complete --json prints the completion and its stats; --compare measures the speedup', () => {
    const prefix = join(dir, 'prefix.py');
    writeFileSync(prefix, 'def add(a, b):\n    """Return the sum."""\n');
    const r = JSON.parse(deer(['complete', '--prefix-file', prefix, '--model', MODEL, '--drafter', 'ngram', '--max-new-tokens', '12', '--json', '--compare', '--threads', '1']));
    assert.equal(typeof r.text, 'string');
    assert.equal(r.stats.drafter, 'ngram');
    assert.ok(r.stats.newTokens > 0 && r.stats.newTokens <= 12);
    assert.equal(r.baseline.drafter, 'none');
    assert.equal(r.identical, true);
    assert.ok(r.speedup > 0);
    const text = deer(['complete', '--prefix-file', prefix, '--model', MODEL, '--drafter', 'none', '--max-new-tokens', '12', '--threads', '1']);
    assert.equal(text, r.text + '\n');
  });

  it('complete --compare with nothing written says there is no speedup rather than NaN', () => {
    const prefix = join(dir, 'prefix-none.py');
    writeFileSync(prefix, 'def add(a, b):\n');
    const r = JSON.parse(deer(['complete', '--prefix-file', prefix, '--model', MODEL, '--max-new-tokens', '0', '--json', '--compare', '--threads', '1']));
    assert.equal(r.stats.newTokens, 0);
    assert.equal(r.speedup, null);
    const shown = spawnSync(process.execPath, [BIN, 'complete', '--prefix-file', prefix, '--model', MODEL, '--max-new-tokens', '0', '--compare', '--threads', '1'], { encoding: 'utf8' });
    assert.equal(shown.status, 0);
    assert.match(shown.stderr, /speedup over plain decoding: n\/a \(plain decoding wrote no tokens\), output identical/);
    assert.doesNotMatch(shown.stderr, /NaN/);
  });

  it('complete drafts as the extension does by default (deer, prompt lookup, draft trees) and spells drafters as bench does', () => {
    const prefix = join(dir, 'prefix-default.py');
    writeFileSync(prefix, 'def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n');
    const r = JSON.parse(deer(['complete', '--prefix-file', prefix, '--model', MODEL, '--max-new-tokens', '12', '--json', '--compare', '--threads', '1']));
    assert.equal(r.stats.drafter, 'deer');
    assert.equal(r.stats.trees, true, 'the default drafts trees where the verifier takes tree_mask');
    assert.equal(r.identical, true);
    const chain = JSON.parse(deer(['complete', '--prefix-file', prefix, '--model', MODEL, '--drafter', 'deer', '--max-new-tokens', '12', '--json', '--threads', '1']));
    assert.equal(chain.stats.trees, false, '"deer" alone verifies chains, as in bench');
    assert.equal(chain.text, r.text);
    assert.throws(() => deer(['complete', '--prefix-file', prefix, '--model', MODEL, '--drafter', 'ar-tree']), (e: { status: number; stderr: string }) => e.status === 2 && /deer drafter only/.test(e.stderr));
  });

  it('complete --seed samples reproducibly: the same text and the same passes, run after run', { skip: !hasModel(DEFAULT_MODEL) && 'models/default missing' }, () => {
    const prefix = join(dir, 'prefix-repeat.ts');
    writeFileSync(prefix, 'export function add(a: number, b: number): number {\n  return a + b;\n}\n\n'.repeat(4) + 'export function add(a: number, b: number): number {\n  return');
    const run = () => JSON.parse(deer(['complete', '--prefix-file', prefix, '--model', DEFAULT_MODEL, '--drafter', 'deer', '--temperature', '0.8', '--seed', '3', '--max-new-tokens', '40', '--json', '--threads', '1']));
    const first = run();
    for (let i = 0; i < 2; i++) {
      const again = run();
      assert.equal(again.text, first.text);
      assert.deepEqual([again.stats.passes, again.stats.draftedTokens], [first.stats.passes, first.stats.draftedTokens], 'draft lengths must not depend on measured times when a seed is given');
    }
  });

  it('bench writes JSON, a Markdown table, an SVG chart and the outputs', () => {
    const out = join(dir, 'bench', 'ts.json');
    const saved = join(dir, 'outputs.jsonl');
    const stdout = deer(['bench', '--prompts', promptsFile('mbpp-ts-reworded.jsonl'), '--limit', '2', '--max-new-tokens', '8', '--model', MODEL, '--json', out, '--save-outputs', saved, '--threads', '1']);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    for (const d of Object.keys(report.results)) {
      const r = report.results[d];
      for (const k of ['tokens_per_s', 'mean_accepted', 'speedup', 'estimated_speedup', 'identical', 'p50_ms', 'p95_ms', 'peak_rss_mb']) assert.ok(k in r, `${d}.${k}`);
      assert.ok(r.estimated_speedup > 0, `${d}: the engine's estimate is reported next to the measured speedup`);
      assert.equal(r.identical, true, `${d} identical`);
    }
    assert.equal(report.results.none.speedup, 1);
    assert.ok(report.model.name && report.machine.cpu);
    assert.match(readFileSync(join(dir, 'bench', 'ts.md'), 'utf8'), /\| drafter \| tokens\/s \| mean accepted \| drafted\/pass \| speedup \| est\. speedup \| identical/);
    // deer is the chain, deer-tree verifies draft trees when the verifier takes tree_mask
    assert.equal(report.results.deer.trees, false);
    assert.equal(report.results['deer-tree'].trees, report.config.tree_attention);
    assert.match(readFileSync(join(dir, 'bench', 'ts.svg'), 'utf8'), /^<svg[\s\S]*<\/svg>\n$/);
    const lines = readFileSync(saved, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    assert.deepEqual(Object.keys(lines[0].completions).sort(), Object.keys(report.results).sort());
    assert.match(stdout, /\| none \|/);
  });

  it('bench --no-heal sends the prompts as typed', { skip: !hasModel(DEFAULT_MODEL) && 'models/default missing' }, () => {
    const run = (extra: string[]) => {
      const out = join(dir, 'bench', `heal${extra.length}.json`);
      const saved = join(dir, `heal${extra.length}.jsonl`);
      deer(['bench', '--prompts', promptsFile('mbpp-ts-reworded.jsonl'), '--limit', '1', '--max-new-tokens', '8', '--model', DEFAULT_MODEL, '--drafters', 'none,deer', '--json', out, '--save-outputs', saved, '--threads', '1', ...extra]);
      return { report: JSON.parse(readFileSync(out, 'utf8')), text: JSON.parse(readFileSync(saved, 'utf8').trim()).completions.deer as string };
    };
    const healed = run([]);
    const typed = run(['--no-heal']);
    assert.equal(healed.report.config.heal, true);
    assert.equal(typed.report.config.heal, false);
    assert.equal(typed.report.results.deer.identical, true);
    // the prompt ends in a newline: healed, the model re-spells it and indents as the file does
    assert.notEqual(typed.text, healed.text);
  });

  it('bench says when the verifier cannot take trees and the -tree rows verify chains', () => {
    const out = join(dir, 'bench', 'plain.json');
    const stdout = deer(['bench', '--prompts', promptsFile('mbpp-ts-reworded.jsonl'), '--limit', '1', '--max-new-tokens', '4', '--model', CONDITIONED_MODEL, '--json', out, '--drafters', 'none,deer-tree', '--threads', '1']);
    assert.match(stdout, /no tree_mask input .* the -tree rows verify chains/);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(report.results['deer-tree'].trees, false);
    assert.equal(report.results['deer-tree'].identical, true);
  });

  it('bench --temperature adds sampling rows checked by the verifier\'s mean log-probability, not token by token', () => {
    const out = join(dir, 'bench', 'sampled.json');
    const args = ['bench', '--prompts', promptsFile('mbpp-ts-reworded.jsonl'), '--limit', '3', '--max-new-tokens', '12', '--model', MODEL, '--json', out, '--drafters', 'none,ngram,deer-tree', '--temperature', '0.8', '--seed', '5', '--threads', '1'];
    const stdout = deer(args);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(Object.keys(report.results), ['none', 'ngram', 'deer-tree', 'none t=0.8', 'ngram t=0.8', 'deer-tree t=0.8']);
    for (const d of ['none', 'ngram', 'deer-tree']) {
      const greedy = report.results[d];
      const sampled = report.results[`${d} t=0.8`];
      assert.equal(greedy.identical, true, `${d}: greedy rows still compare token by token`);
      assert.equal(greedy.mean_logprob, null);
      assert.equal(sampled.identical, null, `${d} t=0.8: sampled outputs are not compared token by token`);
      assert.equal(sampled.temperature, 0.8);
      assert.ok(sampled.mean_logprob < 0, `${d} t=0.8: the verifier's mean log-probability of the output`);
      assert.ok(sampled.speedup > 0);
    }
    assert.equal(report.results['none t=0.8'].logprob_delta, 0, 'none against itself');
    assert.equal(typeof report.results['ngram t=0.8'].logprob_delta, 'number');
    assert.equal(report.config.seed, 5);
    assert.match(stdout, /\| ngram t=0\.8 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \| -[\d.]+ \| [+-][\d.]+ ± [\d.]+ \|/);
    assert.match(stdout, /one seeded stream per completion, not one per position/);
    // the same seed gives the same samples: the sampling rows are reproducible
    deer(args);
    const again = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(again.results['none t=0.8'].mean_logprob, report.results['none t=0.8'].mean_logprob);
  });

  it('bench --tree-budgets writes accepted length and speedup by node budget: JSON, table, chart', () => {
    const out = join(dir, 'bench', 'budgets.json');
    const stdout = deer(['bench', '--prompts', promptsFile('mbpp-ts-reworded.jsonl'), '--limit', '2', '--max-new-tokens', '12', '--model', MODEL, '--json', out, '--tree-budgets', '4,1', '--threads', '1']);
    const report = JSON.parse(readFileSync(out, 'utf8'));
    assert.deepEqual(Object.keys(report.results), ['none', 'deer', 'deer-tree@1', 'deer-tree@4', 'deer+lookup', 'deer+lookup-tree@1', 'deer+lookup-tree@4']);
    assert.deepEqual(Object.keys(report.tree_budget_sweep), ['deer', 'deer+lookup']);
    for (const [d, points] of Object.entries(report.tree_budget_sweep) as [string, { budget: number | null; mean_accepted: number; speedup: number; identical: boolean; drafted_per_pass: number }[]][]) {
      assert.deepEqual(points.map((p) => p.budget), [null, 1, 4]);
      for (const p of points) {
        const row = report.results[p.budget === null ? d : `${d}-tree@${p.budget}`];
        assert.equal(p.mean_accepted, row.mean_accepted);
        assert.equal(p.speedup, row.speedup);
        assert.equal(p.identical, true, `${d} budget ${p.budget}: lossless`);
        // The budget bounds the drafter's nodes; deer+lookup's lookup nodes come on top (tree.test.ts).
        if (p.budget !== null && d === 'deer') assert.ok(p.drafted_per_pass <= p.budget, `${d}: at most ${p.budget} nodes per pass, got ${p.drafted_per_pass}`);
      }
    }
    assert.equal(report.results['deer-tree@4'].trees, report.config.tree_attention);
    assert.match(stdout, /\| budget \| deer: accepted \| speedup \| nodes\/pass \| deer\+lookup: accepted/);
    assert.match(stdout, /\| chain \| [\d.]+ \| [\d.]+x \|/);
    assert.match(stdout, /\| 4 \| [\d.]+ \| [\d.]+x \| [\d.]+ \| [\d.]+ \| [\d.]+x \| [\d.]+ \| yes \|/);
    const svg = readFileSync(join(dir, 'bench', 'budgets.budgets.svg'), 'utf8');
    assert.match(svg, /^<svg[\s\S]*<\/svg>\n$/);
    assert.equal((svg.match(/<polyline /g) ?? []).length, 4, 'two panels, one line per drafter');
    assert.match(svg, /deer\+lookup-tree \(dashed: deer\+lookup chain/);
  });

  it('names a bad option and a bad model folder', () => {
    assert.throws(() => deer(['complete', '--nope', '1']), (e: { status: number; stderr: string }) => e.status === 2 && /unknown option --nope|--prefix-file is required/.test(e.stderr));
    const prefix = join(dir, 'p.txt');
    writeFileSync(prefix, 'x');
    assert.throws(() => deer(['complete', '--prefix-file', prefix, '--model', dir]), (e: { status: number; stderr: string }) => e.status === 1 && /config\.json: missing/.test(e.stderr));
    assert.throws(() => deer(['complete', '--prefix-file', prefix, '--lookup-branches', '0']), (e: { status: number; stderr: string }) => e.status === 2 && /--lookup-branches must be a whole number of at least 1, got 0/.test(e.stderr));
  });
});
