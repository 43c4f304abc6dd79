/**
 * Summarises V8 .cpuprofile files (from `node --cpu-prof`): self and total
 * time per function (name + file:line), and self time per module (a src/
 * file, a node_modules package, node's internals, V8).
 *
 *   npx tsx bench/cpuprofile-summary.ts [--top N] FILE.cpuprofile...
 *
 * custos's TypeScript runs through tsx, whose compiled output is minified to
 * one line, so a src/ function's position in the profile says nothing by
 * itself; it is mapped back to its .ts line through the source map tsx keeps
 * in its cache (os.tmpdir()/tsx-UID). Lines are 1-based.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { SourceMap, type SourceMapPayload, type SourceMapping } from "node:module";
import os from "node:os";
import { basename, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  scriptId: string;
  url: string;
  /** 0-based */
  lineNumber: number;
  /** 0-based */
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  /** Microseconds since the previous sample. */
  timeDeltas: number[];
}

export interface FunctionCost {
  name: string;
  location: string;
  module: string;
  selfMs: number;
  totalMs: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  sampledMs: number;
  functions: FunctionCost[];
  modules: { module: string; selfMs: number }[];
  /** Self time with node's internals and native code charged to the nearest caller in a src/ file or package. */
  charged: { module: string; selfMs: number }[];
}

const ROOT = fileURLToPath(new URL("..", import.meta.url));

interface CachedCompile {
  code: string;
  lineStarts: number[];
  map: SourceMap;
  mtimeMs: number;
}

/** tsx's compile cache, by original source path. */
let tsxCache: Map<string, CachedCompile[]> | null = null;

function loadTsxCache(): Map<string, CachedCompile[]> {
  if (tsxCache) return tsxCache;
  tsxCache = new Map();
  const uid = typeof process.getuid === "function" ? process.getuid() : 0;
  const dir = join(os.tmpdir(), `tsx-${uid}`);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return tsxCache;
  }
  for (const name of names) {
    const file = join(dir, name);
    try {
      const entry = JSON.parse(readFileSync(file, "utf8")) as { code?: unknown; map?: SourceMapPayload };
      const source = entry.map?.sources?.[0];
      if (typeof entry.code !== "string" || !entry.map || typeof source !== "string") continue;
      const lineStarts = [0];
      for (let i = entry.code.indexOf("\n"); i >= 0; i = entry.code.indexOf("\n", i + 1))
        lineStarts.push(i + 1);
      const list = tsxCache.get(source) ?? [];
      list.push({
        code: entry.code,
        lineStarts,
        map: new SourceMap(entry.map),
        mtimeMs: statSync(file).mtimeMs,
      });
      tsxCache.set(source, list);
    } catch {
      // not a compile-cache entry
    }
  }
  for (const list of tsxCache.values()) list.sort((a, b) => b.mtimeMs - a.mtimeMs);
  return tsxCache;
}

/** Maps a frame of tsx-compiled code back to its .ts line (1-based), or null. */
function originalLine(path: string, frame: CallFrame): number | null {
  const candidates = loadTsxCache().get(path) ?? [];
  const name = frame.functionName;
  let fallback: number | null = null;
  for (const c of candidates) {
    const start = c.lineStarts[frame.lineNumber];
    if (start === undefined) continue;
    const found = c.map.findEntry(frame.lineNumber, frame.columnNumber);
    if (!("originalLine" in found)) continue;
    const line = (found as SourceMapping).originalLine + 1;
    // The newest compile whose code has this function's name at that position is the one that ran.
    const at = start + frame.columnNumber;
    if (name === "" || c.code.slice(at, at + name.length + 40).includes(name)) return line;
    fallback ??= line;
  }
  return fallback;
}

function describe(frame: CallFrame): { location: string; module: string } {
  const { url } = frame;
  if (url === "") return { location: "", module: "(V8 / native)" };
  if (url.startsWith("node:"))
    return { location: `${url}:${frame.lineNumber + 1}`, module: "node internals" };
  if (!url.startsWith("file://")) return { location: `${url}:${frame.lineNumber + 1}`, module: url };
  const path = fileURLToPath(url);
  const rel = relative(ROOT, path);
  const nm = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(rel);
  if (nm?.[1])
    return {
      location: `${rel.slice(rel.lastIndexOf("node_modules/"))}:${frame.lineNumber + 1}`,
      module: nm[1],
    };
  if (/\.[cm]?ts$/.test(path)) {
    const line = originalLine(path, frame);
    return { location: `${rel}:${line ?? "?"}`, module: rel };
  }
  return { location: `${rel}:${frame.lineNumber + 1}`, module: rel };
}

/**
 * Profile timestamps are V8's monotonic clock in µs — on Linux the same clock
 * as `process.hrtime.bigint()` / 1000 in any process — so a window measured by
 * the load generator selects the samples taken under load.
 */
export interface Window {
  fromUs: number;
  toUs: number;
}

export function summarise(file: string, profile: CpuProfile, window?: Window): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const keyOf = new Map<number, string>();
  const info = new Map<string, FunctionCost>();
  const moduleOf = new Map<number, string>();
  for (const n of profile.nodes) {
    const f = n.callFrame;
    const { location, module } = describe(f);
    const name = f.functionName || (f.url ? "(anonymous)" : "(root)");
    const key = `${name}\u0000${location}`;
    keyOf.set(n.id, key);
    moduleOf.set(n.id, name.startsWith("(") && location === "" ? name : module);
    if (!info.has(key)) info.set(key, { name, location, module, selfMs: 0, totalMs: 0 });
  }
  const chargedTo = new Map<number, string>();
  const chargeOf = (id: number): string => {
    const known = chargedTo.get(id);
    if (known !== undefined) return known;
    const m = moduleOf.get(id) ?? "(V8 / native)";
    const up = parent.get(id);
    const internal = m === "node internals" || m === "(V8 / native)";
    const charged = internal && up !== undefined && moduleOf.get(up) !== "(root)" ? chargeOf(up) : m;
    chargedTo.set(id, charged);
    return charged;
  };
  const charged = new Map<string, number>();

  let sampled = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i];
    if (id === undefined) continue;
    if (window && (t < window.fromUs || t >= window.toUs)) continue;
    // A sample lasts until the next one.
    const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
    sampled += ms;
    const self = info.get(keyOf.get(id) ?? "");
    if (self) self.selfMs += ms;
    const to = chargeOf(id);
    charged.set(to, (charged.get(to) ?? 0) + ms);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const key = keyOf.get(at);
      if (key === undefined || seen.has(key)) continue;
      seen.add(key);
      const fn = info.get(key);
      if (fn) fn.totalMs += ms;
    }
  }

  const functions = [...info.values()].filter((f) => f.name !== "(root)").sort((a, b) => b.selfMs - a.selfMs);
  const modules = new Map<string, number>();
  for (const f of functions) {
    const bucket = f.name.startsWith("(") && f.location === "" ? f.name : f.module;
    modules.set(bucket, (modules.get(bucket) ?? 0) + f.selfMs);
  }
  return {
    file,
    durationMs: window
      ? (Math.min(window.toUs, profile.endTime) - Math.max(window.fromUs, profile.startTime)) / 1000
      : (profile.endTime - profile.startTime) / 1000,
    sampledMs: sampled,
    functions,
    modules: [...modules.entries()]
      .map(([module, selfMs]) => ({ module, selfMs }))
      .sort((a, b) => b.selfMs - a.selfMs),
    charged: [...charged.entries()]
      .map(([module, selfMs]) => ({ module, selfMs }))
      .sort((a, b) => b.selfMs - a.selfMs),
  };
}

const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)} %`;

export function formatSummary(s: ProfileSummary, top: number): string {
  const idle = s.functions.find((f) => f.name === "(idle)")?.selfMs ?? 0;
  const busy = s.sampledMs - idle;
  const lines = [
    `### ${basename(s.file)}`,
    "",
    `${(s.durationMs / 1000).toFixed(1)} s profiled; idle ${pct(idle, s.sampledMs)}, busy ${(busy / 1000).toFixed(1)} s ` +
      `(${pct(busy, s.sampledMs)}). Percentages below are of all sampled time.`,
    "",
  ];
  // An idle thread (a module-loader hooks thread, say): the heading line says all there is.
  if (busy < 0.01 * s.sampledMs) return `${lines.join("\n")}\n`;
  lines.push(
    `Top ${top} functions by self time:`,
    "",
    "| # | self ms | self % | total % | function | where |",
    "|--:|--:|--:|--:|---|---|",
  );
  s.functions.slice(0, top).forEach((f, i) => {
    lines.push(
      `| ${i + 1} | ${f.selfMs.toFixed(0)} | ${pct(f.selfMs, s.sampledMs)} | ${pct(f.totalMs, s.sampledMs)} | \`${f.name}\` | ${f.location || "—"} |`,
    );
  });
  lines.push("", "Self time by module:", "", "| self ms | self % | module |", "|--:|--:|---|");
  for (const m of s.modules.filter((x) => x.selfMs >= 0.5).slice(0, top)) {
    lines.push(`| ${m.selfMs.toFixed(0)} | ${pct(m.selfMs, s.sampledMs)} | ${m.module} |`);
  }
  lines.push(
    "",
    "Self time by module, node internals and native code charged to their nearest caller in a src/ file or package:",
    "",
    "| ms | % | module |",
    "|--:|--:|---|",
  );
  for (const m of s.charged.filter((x) => x.selfMs >= 0.5).slice(0, top)) {
    lines.push(`| ${m.selfMs.toFixed(0)} | ${pct(m.selfMs, s.sampledMs)} | ${m.module} |`);
  }
  return `${lines.join("\n")}\n`;
}

function cli(argv: string[]): void {
  let top = 15;
  const files: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === "--top") top = Number(argv[++i]);
    else files.push(a);
  }
  if (files.length === 0 || !Number.isInteger(top) || top < 1) {
    process.stderr.write("usage: tsx bench/cpuprofile-summary.ts [--top N] FILE.cpuprofile...\n");
    process.exit(2);
  }
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
    process.stdout.write(`${formatSummary(summarise(file, profile), top)}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) cli(process.argv.slice(2));
