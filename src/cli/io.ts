/**
 * Small helpers shared by the CLI commands: reading local files with errors
 * that name the file, writing secrets with mode 0600 without overwriting,
 * the passphrase (file or hidden prompt), `--context k=v` parsing and output
 * in text or JSON.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { CliError, EXIT } from "./client.js";

export type Format = "text" | "json";

export function readJsonFile(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(
      `cannot read ${what} '${path}': ${(err as NodeJS.ErrnoException).code ?? err}`,
      EXIT.usage,
    );
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`${what} '${path}' is not JSON; is it the right file?`, EXIT.usage);
  }
}

/** Writes a file that must not already exist (shares, keys, tokens), readable by the owner only. */
export function writeNewFile(path: string, content: string, mode = 0o600): void {
  if (existsSync(path)) throw new CliError(`'${path}' already exists; refusing to overwrite it`, EXIT.usage);
  writeFileSync(path, content, { mode, flag: "wx" });
}

export async function readPassphrase(file: string | undefined, prompt: string): Promise<string> {
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new CliError(
        `cannot read passphrase file '${file}': ${(err as NodeJS.ErrnoException).code ?? err}`,
        EXIT.usage,
      );
    }
    const passphrase = text.replace(/\r?\n$/, "");
    if (passphrase.length === 0) throw new CliError(`passphrase file '${file}' is empty`, EXIT.usage);
    return passphrase;
  }
  if (!process.stdin.isTTY) {
    throw new CliError(
      "no passphrase: use --passphrase-file FILE, or run in a terminal to be prompted",
      EXIT.usage,
    );
  }
  return promptHidden(prompt);
}

function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const write = (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput;
    let muted = false;
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = (s: string) => {
      if (!muted) write.call(rl, s);
    };
    rl.question(prompt, (answer) => {
      rl.close();
      process.stderr.write("\n");
      if (answer.length === 0) reject(new CliError("empty passphrase", EXIT.usage));
      else resolve(answer);
    });
    muted = true;
  });
}

export function parseContext(pairs: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new CliError(`--context '${pair}' must be key=value`, EXIT.usage);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function print(format: Format, value: unknown, text: () => string): void {
  process.stdout.write(`${format === "json" ? JSON.stringify(value, null, 2) : text()}\n`);
}

export function asFormat(value: string): Format {
  if (value !== "text" && value !== "json") throw new CliError("--format must be text or json", EXIT.usage);
  return value;
}
