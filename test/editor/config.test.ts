// Settings: read as package.json contributes them (defaults, types, ranges), malformed values fall
// back, the commands registered are the ones contributed, the status text.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_CONFIG, inlineEnabledFor, readConfig, requestSettings, SETTINGS, type DeerConfig } from '../../src/editor/config';
import { DRAFTER_NAMES } from '../../src/engine/api';
import { StatsHistory, statusView, statsViewData, type CompletionRecord } from '../../src/editor/stats';
import type { RunStats } from '../../src/engine/api';

const pkg = JSON.parse(readFileSync(join(__dirname, '../../../package.json'), 'utf8'));

test('readConfig reads every setting of package.json, with its default, type and range', () => {
  const props: Record<string, { type: string; default: unknown; minimum?: number; maximum?: number; enum?: string[] }> = pkg.contributes.configuration.properties;
  const keys = Object.values(SETTINGS).map((s) => `deer.${s.key}`);
  assert.deepEqual([...keys].sort(), Object.keys(props).sort(), 'readConfig reads exactly the settings package.json contributes');
  const typeOf: Record<string, string> = { boolean: 'boolean', string: 'string', path: 'string', int: 'integer', number: 'number', drafter: 'string', languages: 'object' };
  for (const [field, { key, kind }] of Object.entries(SETTINGS) as [keyof DeerConfig, { key: string; kind: string }][]) {
    const p = props[`deer.${key}`];
    assert.equal(p.type, typeOf[kind], `deer.${key} is read as ${kind}`);
    assert.deepEqual(DEFAULT_CONFIG[field], p.default, `default of deer.${key}`);
    const read = (v: unknown) => readConfig({ get: <T>(k: string) => (k === key ? v : undefined) as T })[field];
    if (kind === 'int' || kind === 'number') {
      assert.ok(p.minimum !== undefined && p.maximum !== undefined, `deer.${key} has a range`);
      assert.equal(read(p.minimum - 1000), p.minimum, `deer.${key} below its minimum`);
      assert.equal(read(p.maximum + 1000), p.maximum, `deer.${key} above its maximum`);
      const inside = kind === 'int' ? Math.round((p.minimum + p.maximum) / 2) : (p.minimum + p.maximum) / 3;
      assert.equal(read(inside), inside, `deer.${key} inside its range is kept`);
      if (kind === 'int') assert.equal(read(p.minimum + 0.6), p.minimum + 1, `deer.${key} is a whole number`);
    }
    if (kind === 'drafter') assert.deepEqual([...(p.enum ?? [])].sort(), [...DRAFTER_NAMES].sort(), 'deer.drafter offers every drafter');
  }
});

test('the commands package.json contributes are the ones extension.ts registers', () => {
  const source = readFileSync(join(__dirname, '../../../src/extension.ts'), 'utf8');
  const registered = [...source.matchAll(/registerCommand\(\s*'([^']+)'/g)].map((m) => m[1]).sort();
  const contributed = pkg.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.ok(registered.length > 0, 'no registerCommand found in extension.ts: the scan is broken');
  assert.deepEqual(contributed, registered);
  assert.deepEqual(pkg.contributes.keybindings[0], { key: 'alt+\\', command: 'editor.action.inlineSuggest.trigger', when: 'editorTextFocus' });
});

test('readConfig: missing and malformed values fall back to defaults', () => {
  assert.deepEqual(readConfig({ get: () => undefined }), DEFAULT_CONFIG);
  const bad: Record<string, unknown> = { drafter: 'magic', blockSize: -3, debounceMs: 'soon', temperature: Infinity, modelPath: '  /m  ' };
  const c = readConfig({ get: <T>(k: string) => bad[k] as T });
  assert.equal(c.drafter, 'deer');
  assert.equal(c.blockSize, 0, 'below the range: its minimum');
  assert.equal(c.debounceMs, 75);
  assert.equal(c.temperature, 0);
  assert.equal(c.modelPath, '/m');
  const good: Record<string, unknown> = { 'inline.maxNewTokens': 12, drafter: 'ngram', enabled: false };
  const g = readConfig({ get: <T>(k: string) => good[k] as T });
  assert.equal(g.inlineMaxNewTokens, 12);
  assert.equal(g.drafter, 'ngram');
  assert.equal(g.enabled, false);
});

test('per-language enablement: the map as Copilot reads it, "*" for the rest', () => {
  assert.equal(inlineEnabledFor(DEFAULT_CONFIG, 'typescript'), true);
  assert.equal(inlineEnabledFor(DEFAULT_CONFIG, 'plaintext'), false);
  assert.equal(inlineEnabledFor(DEFAULT_CONFIG, 'markdown'), false);
  assert.equal(inlineEnabledFor({ ...DEFAULT_CONFIG, enabled: false }, 'typescript'), false, 'the master switch wins');
  const set: Record<string, unknown> = { 'inline.languages': { '*': false, python: true, go: 'yes' } };
  const c = readConfig({ get: <T>(k: string) => set[k] as T });
  assert.deepEqual(c.languages, { '*': false, python: true }, 'non-boolean entries are dropped');
  assert.equal(inlineEnabledFor(c, 'python'), true);
  assert.equal(inlineEnabledFor(c, 'typescript'), false);
  const noStar = readConfig({ get: <T>(k: string) => ({ 'inline.languages': { rust: false } } as Record<string, unknown>)[k] as T });
  assert.equal(inlineEnabledFor(noStar, 'go'), true, 'a map without "*" keeps the default for other languages');
  assert.equal(inlineEnabledFor(noStar, 'rust'), false);
  assert.deepEqual(readConfig({ get: <T>(k: string) => ({ 'inline.languages': [true] } as Record<string, unknown>)[k] as T }).languages, DEFAULT_CONFIG.languages);
});

test('requestSettings: the drafter the model has (the engine\'s fallback table), the block size only when set', () => {
  assert.equal(requestSettings(DEFAULT_CONFIG, { drafters: ['none', 'ngram', 'deer'] }).drafter, 'deer');
  assert.equal(requestSettings(DEFAULT_CONFIG, { drafters: ['none', 'ngram'] }).drafter, 'ngram');
  assert.equal(requestSettings({ ...DEFAULT_CONFIG, drafter: 'ar' }, { drafters: ['none', 'ngram', 'deer'] }).drafter, 'ngram');
  assert.equal(requestSettings({ ...DEFAULT_CONFIG, drafter: 'ar' }).drafter, 'ar', 'no model loaded yet: as configured');
  assert.equal(requestSettings(DEFAULT_CONFIG).blockSize, undefined, 'the default leaves the block to deer.json');
  assert.equal(requestSettings({ ...DEFAULT_CONFIG, blockSize: 7 }).blockSize, 7);
  assert.equal(requestSettings({ ...DEFAULT_CONFIG, draftTrees: false }).treeBudget, 0);
  assert.equal(requestSettings(DEFAULT_CONFIG).lookup, true, 'prompt lookup is on by default');
  assert.equal(requestSettings({ ...DEFAULT_CONFIG, promptLookup: false }).lookup, false);
});

function stats(over: Partial<RunStats>): RunStats {
  return {
    drafter: 'deer', promptTokens: 100, reusedTokens: 90, newTokens: 20, passes: 5, acceptedHistogram: [0, 1, 2, 1, 1],
    meanAccepted: 4, prefillMs: 5, draftMs: 10, verifyMs: 40, decodeMs: 50, totalMs: 55, tokensPerSecond: 400, estimatedSpeedup: 3.5,
    ...over,
  };
}

test('status bar text and tooltip per state', () => {
  const base = { drafter: 'deer' as const, model: 'tiny', records: [] };
  assert.match(statusView({ ...base, state: 'loading' }).text, /loading~spin/);
  assert.match(statusView({ ...base, state: 'disabled' }).text, /circle-slash/);
  const err = statusView({ ...base, state: 'error', error: 'config.json is missing' });
  assert.equal(err.error, 'config.json is missing');
  assert.match(err.tooltip, /config\.json is missing/);
  assert.equal(statusView({ ...base, state: 'ready' }).text, '$(zap) DEER');

  const h = new StatsHistory();
  const rec = (s: Partial<RunStats>): CompletionRecord => ({ kind: 'inline', at: 0, latencyMs: 80, stats: stats(s) });
  h.add(rec({ newTokens: 20, decodeMs: 50, estimatedSpeedup: 4 }));
  h.add(rec({ newTokens: 20, decodeMs: 50, estimatedSpeedup: 5 }));
  h.add(rec({ newTokens: 0, passes: 0, decodeMs: 0 })); // produced nothing: not the "last" stats
  const ready = statusView({ ...base, state: 'ready', records: h.all() });
  // Measured figures only: 40 tokens in 10 passes and 100 ms of decoding; the estimates (4x, 5x) are not shown.
  assert.equal(ready.text, '$(zap) 400 tok/s · 4.00/pass');
  assert.doesNotMatch(ready.text + ready.tooltip, /\dx\b|speedup/i);
  assert.match(ready.tooltip, /4\.00 tokens per verifier pass/);
  assert.match(ready.tooltip, /Model: tiny/);
  assert.match(ready.tooltip, /80 ms/);
  assert.equal(h.last?.stats.newTokens, 20);

  const uneven = new StatsHistory();
  uneven.add(rec({ newTokens: 30, passes: 20, decodeMs: 300 }));
  uneven.add(rec({ newTokens: 10, passes: 2, decodeMs: 10 }));
  assert.equal(statusView({ ...base, state: 'ready', records: uneven.all() }).text, '$(zap) 129 tok/s · 1.82/pass', 'token-weighted: 40 tokens / 22 passes, 40 tokens / 310 ms');

  const data = statsViewData(h.all(), 'tiny');
  assert.equal(data.runs.length, 2);
  assert.deepEqual(data.histograms.deer, [0, 2, 4, 2, 2]);
  assert.equal(data.perDrafter[0].runs, 2);

  // runs that verified draft trees are shown apart: accepted length with and without trees
  h.add(rec({ trees: true, newTokens: 30, passes: 5 }));
  const split = statsViewData(h.all(), 'tiny');
  assert.deepEqual(split.perDrafter.map((d) => [d.drafter, d.runs, d.tokensPerPass]), [['deer', 2, 4], ['deer-tree', 1, 6]]);
  assert.deepEqual(Object.keys(split.histograms).sort(), ['deer', 'deer-tree']);
});
