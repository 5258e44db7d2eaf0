// A small argument parser: `--name value`, `--flag`, `--name=value`.

export class UsageError extends Error {}

export interface Parsed {
  command: string | undefined;
  options: Map<string, string | true>;
}

export function parseArgs(argv: readonly string[], flags: ReadonlySet<string>): Parsed {
  const options = new Map<string, string | true>();
  let command: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) options.set(name, a.slice(eq + 1));
      else if (flags.has(name)) options.set(name, true);
      else {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
        options.set(name, argv[++i]);
      }
    } else if (command === undefined) {
      command = a;
    } else {
      throw new UsageError(`unexpected argument: ${a}`);
    }
  }
  return { command, options };
}

export class Options {
  private readonly used = new Set<string>();
  constructor(private readonly map: Map<string, string | true>) {}

  str(name: string): string | undefined;
  str(name: string, fallback: string): string;
  str(name: string, fallback?: string): string | undefined {
    this.used.add(name);
    const v = this.map.get(name);
    if (v === true) throw new UsageError(`--${name} needs a value`);
    return v ?? fallback;
  }

  num(name: string, fallback: number): number;
  num(name: string): number | undefined;
  num(name: string, fallback?: number): number | undefined {
    const v = this.str(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got ${v}`);
    return n;
  }

  flag(name: string): boolean {
    this.used.add(name);
    return this.map.get(name) === true;
  }

  /** Throws on options nobody asked for (typos). */
  checkUnused(): void {
    for (const k of this.map.keys()) if (!this.used.has(k)) throw new UsageError(`unknown option --${k}`);
  }
}
