// The status bar item: one item, one update function (text and tooltip come from stats.ts).
import * as vscode from 'vscode';
import { statusView, type StatusInput, type StatusView } from './stats';

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem('deer.status', vscode.StatusBarAlignment.Right, 100);
  private current: StatusView;

  constructor(private readonly input: () => StatusInput) {
    this.item.name = 'DEER Complete';
    this.item.command = 'deer.showStats';
    this.current = statusView(input());
    this.update();
    this.item.show();
  }

  /** What the item shows now (the test API returns this). */
  get view(): StatusView {
    return this.current;
  }

  update(): void {
    this.current = statusView(this.input());
    this.item.text = this.current.text;
    this.item.tooltip = this.current.tooltip;
    this.item.backgroundColor =
      this.current.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
