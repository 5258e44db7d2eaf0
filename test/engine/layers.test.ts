// The layers of src/ and which may import which: arrows point editor -> worker -> engine, the
// engine imports no other layer (and never vscode), and only the editor side touches vscode.
// Reads every import of every .ts file under src/ (static, dynamic and require).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './support';

const SRC = join(ROOT, 'src');

/** Layer of a file under src/: its first folder, or the file itself at the top (extension.ts). */
const layerOf = (file: string): string => relative(SRC, file).split(/[\\/]/)[0].replace(/\.ts$/, '');

/** Layers each layer may import (itself always). Packages are checked by FORBIDDEN_PACKAGES. */
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  engine: [],
  worker: ['engine'],
  editor: ['worker', 'engine'],
  cli: ['editor', 'worker', 'engine'],
  extension: ['editor', 'worker', 'engine'],
};
/** Packages a layer must not import: vscode stays in the editor; onnxruntime only in the engine (the extension host never loads it). */
const FORBIDDEN_PACKAGES: Readonly<Record<string, readonly string[]>> = {
  engine: ['vscode'],
  worker: ['vscode', 'onnxruntime-node'],
  editor: ['onnxruntime-node'],
  cli: ['vscode', 'onnxruntime-node'],
  extension: ['onnxruntime-node'],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const IMPORT = /(?:\bfrom\s+|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"]([^'"]+)['"]/gm;

export interface Arrow {
  from: string;
  to: string;
  file: string;
  spec: string;
}

/** Every import arrow between layers, and every package import, of the .ts files under `src`. */
export function importArrows(src = SRC): Arrow[] {
  const arrows: Arrow[] = [];
  for (const file of tsFiles(src)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1];
      const from = layerOf(file);
      const to = spec.startsWith('.') ? layerOf(resolve(dirname(file), spec)) : spec.startsWith('node:') ? '' : spec;
      if (to && to !== from) arrows.push({ from, to, file: relative(ROOT, file), spec });
    }
  }
  return arrows;
}

/** The arrows that break the rules above, as `file: from -> to (spec)`. */
export function violations(arrows: readonly Arrow[]): string[] {
  const layers = Object.keys(ALLOWED);
  return arrows
    .filter((a) => (layers.includes(a.to) ? !ALLOWED[a.from]?.includes(a.to) : (FORBIDDEN_PACKAGES[a.from] ?? []).includes(a.to)))
    .map((a) => `${a.file}: ${a.from} -> ${a.to} ('${a.spec}')`);
}

test('every file under src/ belongs to a known layer', () => {
  const unknown = tsFiles(SRC).map(layerOf).filter((l) => !(l in ALLOWED));
  assert.deepEqual([...new Set(unknown)], []);
});

test('imports point one way: editor -> worker -> engine; vscode only in the editor, onnxruntime only in the engine', () => {
  const arrows = importArrows();
  // The scan finds real imports (a regex that matched nothing would pass any code).
  assert.ok(arrows.some((a) => a.from === 'worker' && a.to === 'engine'), 'no worker -> engine arrow found: the scan is broken');
  assert.ok(arrows.some((a) => a.from === 'editor' && a.to === 'vscode'), 'no editor -> vscode arrow found: the scan is broken');
  assert.deepEqual(violations(arrows), []);
});

test('the rules catch the arrows they forbid', () => {
  const arrow = (from: string, to: string): Arrow => ({ from, to, file: `src/${from}/x.ts`, spec: to });
  assert.equal(violations([arrow('worker', 'editor'), arrow('engine', 'worker'), arrow('engine', 'editor'), arrow('engine', 'vscode')]).length, 4);
  assert.deepEqual(violations([arrow('editor', 'worker'), arrow('worker', 'engine'), arrow('editor', 'vscode')]), []);
});
