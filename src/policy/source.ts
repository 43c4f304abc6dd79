/**
 * Reading a policy document from YAML text while keeping where every value
 * came from, so schema errors and lint findings point at a line and column a
 * reviewer (or a CI annotation) can jump to. The YAML is parsed once with
 * `parseDocument` and a `LineCounter`; a path such as `grants.3.keys` is
 * located by walking the node tree, falling back to the deepest node that
 * exists (a missing field is reported where its object starts). YAML syntax
 * errors make the input unusable (`PolicyInputError`, exit 2), whereas a
 * document that parses but breaks the schema is a finding like any other.
 */
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, visit } from "yaml";
import type { z } from "zod";
import { type Policy, PolicySchema } from "./document.js";

export type PathSegment = string | number;

export interface Position {
  line: number;
  column: number;
}

export interface SchemaIssue {
  path: PathSegment[];
  message: string;
  position: Position;
}

export interface PolicySource {
  file: string;
  /** The validated document, or null when the schema refused it. */
  policy: Policy | null;
  issues: SchemaIssue[];
  locate(path: readonly PathSegment[]): Position;
}

/** The input cannot be read as YAML at all: the linter's exit 2, not a finding. */
export class PolicyInputError extends Error {
  override name = "PolicyInputError";
  constructor(
    readonly file: string,
    message: string,
    readonly position?: Position,
  ) {
    super(message);
  }
}

const START: Position = { line: 1, column: 1 };

export function parsePolicy(text: string, file: string): PolicySource {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const firstError = doc.errors[0];
  if (firstError) {
    throw new PolicyInputError(file, `not YAML: ${firstError.message.split("\n")[0]}`, at(firstError.pos[0]));
  }

  const locate = (path: readonly PathSegment[]): Position => {
    let node: unknown = doc.contents;
    let best: Position = node && (node as Node).range ? at((node as Node).range![0]) : START;
    for (const segment of path) {
      const next = child(node, segment);
      if (!next) break;
      // A map entry is reported at its key (`keys:`), which is where an editor's eye goes.
      best = at(next.keyRange ?? next.node?.range?.[0] ?? 0);
      node = next.node;
    }
    return best;
  };

  // toJS would turn a `__proto__` key into a prototype and the entry would vanish unseen; refuse it instead.
  const protoKeys: SchemaIssue[] = [];
  visit(doc, {
    Pair(_, pair) {
      if (isScalar(pair.key) && pair.key.value === "__proto__") {
        protoKeys.push({
          path: [],
          message: "'__proto__' is not allowed as a key",
          position: at(pair.key.range?.[0] ?? 0),
        });
      }
    },
  });
  if (protoKeys.length > 0) return { file, policy: null, issues: protoKeys, locate };
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  const parsed = PolicySchema.safeParse(raw);
  if (parsed.success) return { file, policy: parsed.data, issues: [], locate };
  return { file, policy: null, issues: parsed.error.issues.map((i) => toIssue(i, raw, locate)), locate };
}

function child(node: unknown, segment: PathSegment): { node: Node | null; keyRange?: number } | null {
  if (isMap(node)) {
    const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : p.key) === String(segment));
    if (!pair) return null;
    const keyStart = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
    return {
      node: (pair.value as Node | null) ?? null,
      ...(keyStart !== undefined && { keyRange: keyStart }),
    };
  }
  if (isSeq(node) && typeof segment === "number") {
    const item = node.items[segment] as Node | undefined;
    return item ? { node: item, ...(item.range && { keyRange: item.range[0] }) } : null;
  }
  return null;
}

function valueAt(raw: unknown, path: readonly PathSegment[]): unknown {
  let v = raw;
  for (const s of path)
    v = v !== null && typeof v === "object" ? (v as Record<string, unknown>)[s] : undefined;
  return v;
}

/** zod's message, made to name the missing field or the wrong value rather than list 59 options. */
function explain(issue: z.core.$ZodIssue, value: unknown): string {
  if (issue.code === "invalid_type" && value === undefined) {
    return `missing required field '${String(issue.path.at(-1))}' (${issue.expected})`;
  }
  if (issue.code === "invalid_value" && issue.values.length > 6) {
    const shown = issue.values.slice(0, 6).map(String).join(", ");
    return `${JSON.stringify(value)} is not one of the ${issue.values.length} allowed values (${shown}, …)`;
  }
  return issue.message;
}

function toIssue(
  issue: z.core.$ZodIssue,
  raw: unknown,
  locate: (path: readonly PathSegment[]) => Position,
): SchemaIssue {
  const path = issue.path.filter((s): s is PathSegment => typeof s !== "symbol");
  if (issue.code === "unrecognized_keys") {
    // Point at the first unknown field itself, not at the object holding it.
    const key = issue.keys[0]!;
    return {
      path: [...path, key],
      message: `unknown field${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `'${k}'`).join(", ")}${hint(issue.keys[0]!)}`,
      position: locate([...path, key]),
    };
  }
  const where = path.length ? path.join(".") : "document";
  return { path, message: `${where}: ${explain(issue, valueAt(raw, path))}`, position: locate(path) };
}

const FIELD_HINTS: Record<string, string> = {
  organizations: "organisations",
  organization: "organisation",
  role: "roles",
  key: "keys",
  operation: "operations",
  purpose: "purposes",
  condition: "conditions",
  approval: "approvals",
  grant: "grants",
  conflict: "conflicts",
};

function hint(key: string): string {
  const known = FIELD_HINTS[key];
  return known ? ` (did you mean '${known}'?)` : "";
}
