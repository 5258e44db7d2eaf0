// DEER Complete: activate/deactivate, wiring only. Each piece lives in src/editor/ (VS Code side)
// and src/worker/ (the inference process). Nothing here blocks activation: the model loads in a
// child process in the background, and nothing is ever sent over the network.
import * as vscode from 'vscode';
import * as os from 'node:os';
import * as path from 'node:path';
import type { RunStats } from './engine/api';
import { inlineEnabledFor, readConfig, type DeerConfig } from './editor/config';
import { generateAtCursor } from './editor/generateCommand';
import { InlinePipeline } from './editor/inlineCompletion';
import { loadErrorActions, LoadErrorNotices, toggleNotice } from './editor/notices';
import { DeerInlineProvider, documentText, INLINE_SELECTOR } from './editor/inlineProvider';
import { StatsHistory, statsViewData, uiState, type CompletionRecord, type StatusView, type UiState } from './editor/stats';
import { StatusBar } from './editor/statusBar';
import { StatsView, type StatsPageData } from './editor/statsView';
import { EngineClient } from './worker/engineClient';

/**
 * Returned by activate(). A test hook for the VS Code test suite (test/vscode/), not a public API:
 * status() is what the status bar shows (`text` is exactly the item's text), lastStats() the last
 * completion's engine stats, whenIdle() resolves when no model load or inference is running.
 */
export interface DeerApi {
  status(): { state: UiState; text: string; tooltip: string; error?: string };
  lastStats(): RunStats | undefined;
  whenIdle(): Promise<void>;
  /** Every notification (toast) the extension showed, oldest first. */
  notices(): readonly string[];
  /** The output channel's last lines (without their timestamps), oldest first. */
  log(): readonly string[];
  /** Every progress message of DEER: Generate's notification, oldest first. */
  progress(): readonly string[];
  /** What the stats view shows now (its status line, the error and its buttons). */
  statsPage(): StatsPageData;
}

const LOG_KEPT = 200;

/** Pause after a file is opened or the cursor is clicked somewhere before its context is prefetched. */
const PREFETCH_DELAY_MS = 250;

export function activate(context: vscode.ExtensionContext): DeerApi {
  const output = vscode.window.createOutputChannel('DEER Complete');
  const logged: string[] = []; // the last LOG_KEPT lines, for the test hook
  const log = (line: string): void => {
    output.appendLine(`[${new Date().toISOString()}] ${line}`);
    logged.push(line);
    if (logged.length > LOG_KEPT) logged.splice(0, logged.length - LOG_KEPT);
  };
  const history = new StatsHistory();
  const client = new EngineClient({ workerPath: context.asAbsolutePath(path.join('dist', 'worker.js')) });
  let config: DeerConfig = readConfig(vscode.workspace.getConfiguration('deer'));
  let loadStarted = false;
  let generating = 0; // Generate runs writing into an editor (inline completion pauses meanwhile)
  let active = 0; // provider calls and generate runs in progress
  let crashReported = false;
  const loadErrors = new LoadErrorNotices();
  const shown: string[] = [];
  /** Every toast goes through here (the test hook lists them). */
  const notify = (kind: 'info' | 'warning' | 'error', message: string, ...actions: string[]): Thenable<string | undefined> => {
    shown.push(message);
    if (kind === 'error') return vscode.window.showErrorMessage(message, ...actions);
    if (kind === 'warning') return vscode.window.showWarningMessage(message, ...actions);
    return vscode.window.showInformationMessage(message, ...actions);
  };

  const progressShown: string[] = [];
  const status = new StatusBar(() => ({
    state: uiState(client.state, config.enabled),
    error: client.error?.message,
    model: client.info?.name,
    drafter: config.drafter,
    records: history.all(),
  }));
  const statsPage = (): StatsPageData => ({
    ...statsViewData(history.all(), client.info?.name),
    status: status.view.tooltip.replace(/\nClick for the stats view\.$/, ''),
    error: client.error?.message,
    actions: client.error ? loadErrorActions(config.modelPath) : [],
  });
  const statsView = new StatsView(context.extensionUri, statsPage);
  const onRecord = (record: CompletionRecord): void => {
    history.add(record);
    status.update();
    statsView.update();
  };
  const activeWaiters: (() => void)[] = [];
  const track = async <T>(work: Promise<T>): Promise<T> => {
    active++;
    try {
      return await work;
    } finally {
      if (--active === 0) for (const w of activeWaiters.splice(0)) w();
    }
  };
  const whenNothingActive = (): Promise<void> => (active === 0 ? Promise.resolve() : new Promise((r) => activeWaiters.push(r)));

  const modelDir = (): string => resolveModelPath(config.modelPath, context.extensionPath);
  const load = (): Promise<unknown> => {
    loadStarted = true;
    const dir = modelDir();
    // 0 = the engine's choice (ENGINE_DEFAULTS.threads).
    const threads = config.threads > 0 ? config.threads : undefined;
    log(`loading model from ${dir} (threads: ${threads ?? 'auto'})`);
    const loading = client.load({ modelDir: dir, threads }, config.drafter);
    loading.then(
      (info) => {
        loadErrors.reset();
        log(`model ${info.name} loaded: ${info.threads} inference thread(s)${info.spinning ? ', spinning' : ''}`);
      },
      (err: Error) => {
        log(`model load failed: ${err.message}`);
        void showLoadError(dir, err);
      },
    );
    return loading;
  };
  const ensureLoaded = (): Promise<unknown> => (loadStarted && client.state !== 'error' ? client.whenIdle() : load()).then(() => {
    if (client.state !== 'ready') throw client.error ?? new Error('model not loaded');
  });

  const pipeline = new InlinePipeline(client, () => config, onRecord);
  const provider = new DeerInlineProvider(
    pipeline,
    (document) => inlineEnabledFor(config, document.languageId) && generating === 0 && client.state === 'ready',
    track,
    log,
  );

  // When a file is opened or the cursor is put somewhere with the mouse, read the context there
  // into the engine's KV cache, so the first keystroke only runs a few new tokens.
  let prefetchTimer: NodeJS.Timeout | undefined;
  let prefetchAbort: AbortController | undefined;
  const schedulePrefetch = (editor: vscode.TextEditor | undefined): void => {
    clearTimeout(prefetchTimer);
    prefetchAbort?.abort();
    if (!editor || !vscode.languages.match(INLINE_SELECTOR, editor.document) || !inlineEnabledFor(config, editor.document.languageId)) return;
    prefetchTimer = setTimeout(() => {
      if (!config.enabled || generating > 0 || client.state !== 'ready' || client.busy) return;
      const ac = new AbortController();
      prefetchAbort = ac;
      const document = editor.document;
      void pipeline.prefetch(documentText(document), document.offsetAt(editor.selection.active), ac.signal);
    }, PREFETCH_DELAY_MS);
  };

  context.subscriptions.push(
    { dispose: () => clearTimeout(prefetchTimer) },
    vscode.window.onDidChangeActiveTextEditor(schedulePrefetch),
    vscode.window.onDidChangeTextEditorSelection((e) => {
      if (e.kind === vscode.TextEditorSelectionChangeKind.Mouse) schedulePrefetch(e.textEditor);
    }),
    output,
    status,
    statsView,
    { dispose: () => void client.dispose() },
    client.onEvent((e) => {
      if (e.type === 'log') log(e.line);
      if (e.type === 'state') status.update();
      if (e.type === 'state' && e.state === 'ready') schedulePrefetch(vscode.window.activeTextEditor);
      if (e.type === 'crash') {
        log(e.message + (e.restarting ? '; restarting it' : '; not restarting it again'));
        if (!e.restarting) void offerRestart(e.message);
        else if (!crashReported) {
          crashReported = true;
          void notify('warning', `DEER: the ${e.message}. It was restarted.`);
        }
      }
    }),
    vscode.languages.registerInlineCompletionItemProvider(INLINE_SELECTOR, provider),
    vscode.commands.registerCommand('deer.toggle', async () => {
      const on = !config.enabled;
      await vscode.workspace.getConfiguration('deer').update('enabled', on, vscode.ConfigurationTarget.Global);
      void notify('info', toggleNotice(on));
    }),
    vscode.commands.registerCommand('deer.useEmbeddedModel', () =>
      vscode.workspace.getConfiguration('deer').update('modelPath', undefined, vscode.ConfigurationTarget.Global),
    ),
    vscode.commands.registerCommand('deer.openSettings', () => vscode.commands.executeCommand('workbench.action.openSettings', '@ext:deer-complete.deer-complete')),
    vscode.commands.registerCommand('deer.generate', () =>
      track(
        generateAtCursor({
          client,
          config: () => config,
          ensureLoaded,
          onRecord,
          setGenerating: (on) => (generating += on ? 1 : -1),
          notify,
          onProgress: (message) => progressShown.push(message),
        }),
      ),
    ),
    vscode.commands.registerCommand('deer.showStats', () => statsView.show()),
    vscode.commands.registerCommand('deer.showLog', () => output.show(true)),
    vscode.commands.registerCommand('deer.chooseModelFolder', async () => {
      const picked = await vscode.window.showOpenDialog({
        canSelectFolders: true,
        canSelectFiles: false,
        canSelectMany: false,
        openLabel: 'Use this model folder',
        title: 'DEER: choose a model folder (with config.json, tokenizer.json, onnx/model.onnx)',
      });
      if (!picked?.[0]) return;
      await vscode.workspace.getConfiguration('deer').update('modelPath', picked[0].fsPath, vscode.ConfigurationTarget.Global);
    }),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration('deer')) return;
      const before = config;
      config = readConfig(vscode.workspace.getConfiguration('deer'));
      if (config.temperature !== before.temperature || config.inlineMaxNewTokens !== before.inlineMaxNewTokens) pipeline.cache.clear();
      const reload = config.modelPath !== before.modelPath || config.threads !== before.threads;
      if (reload && (loadStarted || config.enabled)) {
        pipeline.cache.clear();
        void load().catch(() => undefined);
      } else if (config.enabled && !loadStarted) {
        void load().catch(() => undefined);
      }
      status.update();
    }),
  );

  /** The client gave up restarting (too many crashes in a row): say so once, offer to start again. */
  async function offerRestart(message: string): Promise<void> {
    const restart = 'Restart';
    const pick = await notify('error', `DEER: the ${message}. It kept crashing, so completion is off.`, restart);
    if (pick === restart) void load().catch(() => undefined);
  }

  async function showLoadError(dir: string, err: Error): Promise<void> {
    const message = loadErrors.next(dir, err);
    if (message === undefined) return; // this cause was already shown
    const actions = loadErrorActions(config.modelPath);
    const pick = await notify('error', message, ...actions.map((a) => a.title));
    const action = actions.find((a) => a.title === pick);
    if (action) await vscode.commands.executeCommand(action.command);
  }

  // Load in the background once activation is done (inline completion only; Generate loads on demand).
  if (config.enabled) setImmediate(() => void load().catch(() => undefined));

  return {
    status: (): StatusView => status.view,
    lastStats: () => history.last?.stats,
    notices: () => shown,
    log: () => logged,
    progress: () => progressShown,
    statsPage,
    whenIdle: async () => {
      // A provider call ends after its request; a request can start from a provider call.
      while (active > 0 || client.busy) {
        await whenNothingActive();
        await client.whenIdle();
        await new Promise((r) => setImmediate(r));
      }
    },
  };
}

export function deactivate(): void {
  // Everything is in context.subscriptions (the client's dispose stops the inference process).
}

/** '' → the embedded model; '~' and paths relative to the first workspace folder are resolved. */
export function resolveModelPath(setting: string, extensionPath: string): string {
  if (!setting) return path.join(extensionPath, 'models', 'default');
  let p = setting.replace(/^~(?=$|[\\/])/, os.homedir());
  if (!path.isAbsolute(p)) {
    const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    p = path.resolve(root ?? extensionPath, p);
  }
  return p;
}
