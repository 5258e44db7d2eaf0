// The stats view's error state: the page (media/stats.js, run here on a minimal DOM) shows one
// button per load-error action, a click posts that command, and the extension runs exactly the
// commands it contributes and registers. The real page in VS Code: test/vscode.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { LOAD_ERROR_ACTIONS, loadErrorActions, PAGE_COMMANDS } from '../../src/editor/notices';

const ROOT = join(__dirname, '..', '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const extensionSource = readFileSync(join(ROOT, 'src', 'extension.ts'), 'utf8');

/** Just enough of an element for the page's status line and buttons. */
class FakeElement {
  children: FakeElement[] = [];
  textContent = '';
  className = '';
  dataset: Record<string, string> = {};
  private listeners = new Map<string, (() => void)[]>();
  constructor(readonly tag: string) {}
  get firstChild(): FakeElement | undefined {
    return this.children[0];
  }
  appendChild(child: FakeElement): FakeElement {
    this.children.push(child);
    return child;
  }
  removeChild(child: FakeElement): void {
    this.children = this.children.filter((c) => c !== child);
  }
  addEventListener(type: string, fn: () => void): void {
    this.listeners.set(type, [...(this.listeners.get(type) ?? []), fn]);
  }
  click(): void {
    for (const fn of this.listeners.get('click') ?? []) fn();
  }
}

/** Loads media/stats.js as the webview does; returns its elements and what it posted. */
function loadPage() {
  const byId = new Map<string, FakeElement>();
  const element = (id: string) => byId.get(id) ?? byId.set(id, new FakeElement('div')).get(id)!;
  const posted: unknown[] = [];
  let onMessage: ((e: { data: unknown }) => void) | undefined;
  runInNewContext(readFileSync(join(ROOT, 'media', 'stats.js'), 'utf8'), {
    acquireVsCodeApi: () => ({ postMessage: (m: unknown) => posted.push(JSON.parse(JSON.stringify(m))) }), // out of the page's realm
    document: {
      getElementById: element,
      querySelector: (sel: string) => element(sel),
      createElement: (tag: string) => new FakeElement(tag),
    },
    window: { addEventListener: (type: string, fn: (e: { data: unknown }) => void) => type === 'message' && (onMessage = fn) },
  });
  return { element, posted, show: (data: unknown) => onMessage!({ data: { type: 'data', data } }) };
}

const errorPage = (modelPath: string) => ({
  status: 'DEER: the folder is not a usable model folder',
  error: 'config.json: missing',
  actions: loadErrorActions(modelPath),
  runs: [],
  histograms: {},
  perDrafter: [],
});

test('error view: a button per action, each posting its command, which the extension runs', () => {
  const page = loadPage();
  assert.deepEqual(page.posted, [{ type: 'ready' }], 'the page asks for its data');
  page.show(errorPage('/some/folder'));
  assert.match(page.element('status').textContent, /config\.json: missing/);
  const buttons = page.element('actions').children;
  assert.deepEqual(
    buttons.map((b) => b.textContent),
    ['Choose Model Folder…', 'Use Embedded Model', 'Open Settings'],
  );
  const contributed = new Map<string, string>(pkg.contributes.commands.map((c: { command: string; title: string }) => [c.command, c.title]));
  for (const button of buttons) {
    page.posted.length = 0;
    button.click();
    assert.equal(page.posted.length, 1);
    const { type, command } = page.posted[0] as { type: string; command: string };
    assert.equal(type, 'command');
    assert.ok(PAGE_COMMANDS.has(command), `the view would not run ${command}`);
    assert.ok(contributed.has(command), `${command} is not in package.json contributes.commands`);
    assert.ok(extensionSource.includes(`registerCommand('${command}'`), `${command} is not registered in src/extension.ts`);
  }
});

test('error view: no "Use Embedded Model" when the embedded model is the one that failed; no buttons once loaded', () => {
  const page = loadPage();
  page.show(errorPage(''));
  assert.deepEqual(
    page.element('actions').children.map((b) => b.textContent),
    LOAD_ERROR_ACTIONS.filter((a) => a.command !== 'deer.useEmbeddedModel').map((a) => a.title),
  );
  page.show({ ...errorPage('/some/folder'), error: undefined, actions: [], status: 'DEER: ready' });
  assert.equal(page.element('actions').children.length, 0, 'the buttons go when the model loads');
  assert.equal(page.element('status').textContent, 'DEER: ready');
});
