/**
 * The node's repository configuration (`custos server --repositories FILE`,
 * YAML; docs/FORMATS.md §5.8): which repository each name in the custody tree
 * means, and how to reach it. Connection strings and tokens are credentials:
 * they come from this file (or a file it names), go to the repository that
 * needs them, and nowhere else — `describeRepositories` gives a loggable
 * summary without them, and `redact` scrubs them from any message that might
 * echo them back. Share-node repositories are reached over the node's
 * ShareNodeLink (the `--share-node-ca`/client-certificate/insecure-http
 * options of `custos server`), and a plain http:// URL off loopback is
 * refused here, when the file is read.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import type { ShareNodeLink } from "../threshold/share-node-link.js";
import { DirectoryRepository } from "./directory.js";
import { PostgresRepository, TABLE_RE } from "./postgres.js";
import { ShareNodeRepository } from "./share-node-client.js";
import type { ShareRepository } from "./share-repository.js";

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const DEFAULT_REPOSITORY_TIMEOUT_MS = 3000;

const Entry = z.discriminatedUnion("type", [
  z.strictObject({ type: z.literal("directory"), path: z.string().min(1) }),
  z.strictObject({
    type: z.literal("postgres"),
    connectionString: z.string().min(1).optional(),
    connectionStringFile: z.string().min(1).optional(),
    table: z.string().regex(TABLE_RE).optional(),
  }),
  z.strictObject({
    type: z.literal("share-node"),
    url: z.url(),
    token: z.string().min(16).optional(),
    tokenFile: z.string().min(1).optional(),
  }),
]);

const ConfigSchema = z.strictObject({
  timeoutMs: z.number().int().min(50).max(120_000).optional(),
  repositories: z.record(z.string(), Entry),
});

export interface RepositoryConfig {
  repositories: Map<string, ShareRepository>;
  timeoutMs: number;
  /** Loggable: name → type and where (no credentials). */
  summary: Record<string, string>;
  /** Every credential in the file, for `redact`. */
  secrets: string[];
}

function readSecret(value: string | undefined, file: string | undefined, base: string, what: string): string {
  if (value !== undefined && file !== undefined) throw new Error(`give ${what} or ${what}File, not both`);
  if (value !== undefined) return value;
  if (file === undefined) throw new Error(`${what} (or ${what}File) is required`);
  return readFileSync(resolve(base, file), "utf8").trim();
}

/** Builds the repositories from parsed YAML/JSON; `base` resolves relative paths; `link` reaches share nodes. */
export function repositoryConfig(raw: unknown, base: string, link?: ShareNodeLink): RepositoryConfig {
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`repositories: ${issue?.path.join(".") || "(file)"}: ${issue?.message ?? "invalid"}`);
  }
  const timeoutMs = parsed.data.timeoutMs ?? DEFAULT_REPOSITORY_TIMEOUT_MS;
  const repositories = new Map<string, ShareRepository>();
  const summary: Record<string, string> = {};
  const secrets: string[] = [];
  for (const [name, e] of Object.entries(parsed.data.repositories)) {
    if (!NAME_RE.test(name)) throw new Error(`repositories: '${name}': names must match ${NAME_RE.source}`);
    try {
      if (e.type === "directory") {
        const dir = resolve(base, e.path);
        repositories.set(name, new DirectoryRepository(dir));
        summary[name] = `directory ${dir}`;
      } else if (e.type === "postgres") {
        const cs = readSecret(e.connectionString, e.connectionStringFile, base, "connectionString");
        secrets.push(cs);
        repositories.set(name, new PostgresRepository({ connectionString: cs, table: e.table, timeoutMs }));
        summary[name] = `postgres table ${e.table ?? "custos_shares"}`;
      } else {
        const token = readSecret(e.token, e.tokenFile, base, "token");
        secrets.push(token);
        repositories.set(name, new ShareNodeRepository({ url: e.url, token, timeoutMs, link }));
        summary[name] = `share node ${new URL(e.url).origin}`;
      }
    } catch (err) {
      throw new Error(`repositories.${name}: ${(err as Error).message}`);
    }
  }
  return { repositories, timeoutMs, summary, secrets };
}

/** Reads `--repositories FILE` (YAML or JSON). */
export function readRepositoryConfig(file: string, link?: ShareNodeLink): RepositoryConfig {
  const raw: unknown = parseYaml(readFileSync(file, "utf8"));
  return repositoryConfig(raw, dirname(resolve(file)), link);
}

/** `message` with every configured credential (and its URL-encoded form) replaced by "[redacted]". */
export function redact(message: string, secrets: readonly string[]): string {
  let out = message;
  for (const s of secrets) {
    if (s.length === 0) continue;
    for (const form of new Set([s, encodeURIComponent(s)])) out = out.split(form).join("[redacted]");
  }
  return out;
}
