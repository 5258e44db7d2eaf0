// "DEER: Show Speed Stats": a webview that charts recent completions. The page's script and
// style live in media/ (stats.js, stats.css); the CSP allows only those and a nonce'd script,
// nothing remote. Data goes in by postMessage whenever a completion finishes.
import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';
import { PAGE_COMMANDS } from './notices';
import type { StatsViewData } from './stats';

export type StatsPageData = StatsViewData & { status: string; error?: string; actions: readonly { title: string; command: string }[] };

export class StatsView implements vscode.Disposable {
  private panel?: vscode.WebviewPanel;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly data: () => StatsPageData,
  ) {}

  show(): void {
    if (this.panel) {
      this.panel.reveal();
      this.update();
      return;
    }
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    const panel = vscode.window.createWebviewPanel('deer.stats', 'DEER Speed', vscode.ViewColumn.Beside, {
      enableScripts: true,
      localResourceRoots: [media],
      retainContextWhenHidden: false,
    });
    this.panel = panel;
    panel.iconPath = vscode.Uri.joinPath(media, 'icon.png');
    panel.webview.html = this.html(panel.webview, media);
    panel.webview.onDidReceiveMessage((msg: { type?: string; command?: string }) => {
      if (msg?.type === 'ready') this.update();
      if (msg?.type === 'command' && msg.command && PAGE_COMMANDS.has(msg.command)) void vscode.commands.executeCommand(msg.command);
    });
    panel.onDidDispose(() => (this.panel = undefined));
  }

  update(): void {
    void this.panel?.webview.postMessage({ type: 'data', data: this.data() });
  }

  dispose(): void {
    this.panel?.dispose();
  }

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    const nonce = randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(media, 'stats.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(media, 'stats.css'));
    const csp = [
      "default-src 'none'",
      `style-src ${webview.cspSource}`,
      `img-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}'`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style}">
<title>DEER Speed</title>
</head>
<body>
<header><h1>DEER speed</h1><p id="status"></p><div id="actions"></div></header>
<section id="summary"></section>
<section class="charts">
  <figure><figcaption>Tokens per verifier pass (1 = plain decoding)</figcaption><svg id="tpp" class="chart"></svg></figure>
  <figure><figcaption>Tokens per second</figcaption><svg id="tps" class="chart"></svg></figure>
  <figure><figcaption>Accepted draft tokens per verifier pass</figcaption><svg id="hist" class="chart"></svg></figure>
  <figure><figcaption>Per drafter</figcaption><table id="drafters"></table></figure>
</section>
<p id="empty" class="empty">No completions yet: type in an editor or run "DEER: Generate".</p>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
  }
}
