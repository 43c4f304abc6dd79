/**
 * The CLI's side of custody trees: reading a tree file (`custos operator init
 * --tree tree.yaml`) and turning each custodian's `.pub` file into the public
 * key the server needs, opening a share file of either form for
 * `custos operator unseal`, printing the tree with what each gate still
 * misses for `custos status`, and printing a custody change's new tree — who
 * will hold shares, behind which thresholds, with which key fingerprints —
 * for the custodian to check before `rekey submit` sends their share. Kept
 * beside custody.ts so that file stays the ceremony's story.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { b64u } from "../../crypto/bytes.js";
import type { Secret } from "../../crypto/secret.js";
import type { CeremonyKind } from "../../custody/ceremony-kind.js";
import {
  fingerprint,
  openPrivateKeyFile,
  parsePrivateKeyFile,
  parsePublicKeyFile,
} from "../../custody/custodian-key.js";
import { makeUnsealSubmission } from "../../custody/flat-submission.js";
import { openShareFile, parseShareFile } from "../../custody/share-format.js";
import {
  type GateStatus,
  isGate,
  type LeafStatus,
  type NodeInput,
  type TreeInput,
} from "../../custody/tree.js";
import {
  makeTreeUnsealSubmission,
  openTreeShareFile,
  TREE_SHARE_FILE_FORMAT,
  TreeShareFileSchema,
} from "../../custody/tree-share-format.js";
import { CliError, EXIT } from "../client.js";
import { readJsonFile, readPassphrase } from "../io.js";

type Json = Record<string, unknown>;

/**
 * Reads a tree file and returns the tree as the init request takes it:
 * each custodian leaf's `key` (default `<id>.pub` next to the tree file)
 * replaced by the public key it holds. The server checks the rest.
 */
export function readTreeFile(file: string): { tree: Json; custodians: string[] } {
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CliError(`${file}: ${(err as Error).message}`, EXIT.usage);
  }
  const base = dirname(resolve(file));
  const custodians: string[] = [];
  const walk = (node: unknown, where: string): Json => {
    if (typeof node !== "object" || node === null || Array.isArray(node)) {
      throw new CliError(`${file}: ${where} must be a gate {threshold, of} or a leaf`, EXIT.usage);
    }
    const n = node as Json;
    if (Array.isArray(n.of)) return { ...n, of: n.of.map((child, i) => walk(child, `${where}.of[${i}]`)) };
    if (typeof n.custodian !== "string") return n;
    const { key, ...rest } = n;
    const path = resolve(base, typeof key === "string" ? key : `${n.custodian}.pub`);
    try {
      const pub = parsePublicKeyFile(JSON.parse(readFileSync(path, "utf8")), n.custodian);
      custodians.push(pub.custodian);
      return { ...rest, publicKey: b64u.encode(pub.publicKey) };
    } catch (err) {
      throw new CliError(
        `${file}: ${where} (${n.custodian}): ${path}: ${(err as Error).message}`,
        EXIT.usage,
      );
    }
  };
  return { tree: walk(raw, "tree"), custodians };
}

/** A custodian's share, opened, whichever its form: ready to re-seal to a ceremony. */
export interface OpenedShare {
  custodian: string;
  initId: string;
  /** The node key the share file names (b64u). */
  node: string;
  /** "alice" or "root/2/custodian:alice". */
  label: string;
  /** The share sealed to a ceremony's key for its kind (docs/FORMATS.md §5.3, §5.7). */
  submission(kind: CeremonyKind, nonce: Uint8Array, ceremonyPublicKey: Uint8Array): Promise<unknown>;
  dispose(): void;
}

/** Parses a share file of either form (for the custodian check before the passphrase prompt). */
export function parseAnyShareFile(json: unknown): {
  custodian: string;
  open(key: Secret): Promise<OpenedShare>;
} {
  const opened = (
    f: { custodian: string; initId: string; node: string },
    label: string,
    rest: Pick<OpenedShare, "submission" | "dispose">,
  ): OpenedShare => ({ custodian: f.custodian, initId: f.initId, node: f.node, label, ...rest });
  if ((json as Json | null)?.format === TREE_SHARE_FILE_FORMAT) {
    const file = TreeShareFileSchema.parse(json);
    return {
      custodian: file.custodian,
      open: async (key) => {
        const payload = await openTreeShareFile(file, key);
        return opened(file, file.path, {
          submission: (kind, nonce, pub) => makeTreeUnsealSubmission(payload, kind, nonce, pub),
          dispose: () => payload.value.dispose(),
        });
      },
    };
  }
  const file = parseShareFile(json);
  return {
    custodian: file.custodian,
    open: async (key) => {
      const payload = await openShareFile(file, key);
      return opened(file, file.custodian, {
        submission: (kind, nonce, pub) => makeUnsealSubmission(payload, kind, nonce, pub),
        dispose: () => payload.share.dispose(),
      });
    },
  };
}

/** The tree, one line per gate and leaf, indented, with what is missing. */
export function describeTree(tree: GateStatus, indent = "  "): string[] {
  const label = tree.name ? `${tree.path} (${tree.name})` : tree.path;
  const state = tree.satisfied ? "satisfied" : `needs ${tree.missing} more`;
  const lines = [`${indent}${label}: ${tree.threshold} of ${tree.of.length}, ${tree.have} present, ${state}`];
  for (const m of tree.of) {
    if ("of" in m) lines.push(...describeTree(m, `${indent}  `));
    else lines.push(`${indent}  ${(m as LeafStatus).present ? "✓" : "·"} ${m.path}`);
  }
  return lines;
}

/** A change's new tree, one line per gate and leaf, with each custodian's key fingerprint (as keygen prints it). */
export function describeNewTree(tree: TreeInput): string[] {
  const walk = (node: NodeInput, path: string, indent: string): string[] => {
    if (isGate(node)) {
      const label = node.name ? `${path} (${node.name})` : path;
      const head = `${indent}${label}: any ${node.threshold} of ${node.of.length}`;
      return [
        head,
        ...node.of.flatMap((m, i) => walk(m, isGate(m) ? `${path}/${i + 1}` : path, `${indent}  `)),
      ];
    }
    if ("custodian" in node) {
      const key = fingerprint(b64u.decode(node.publicKey, "publicKey"));
      return [`${indent}custodian ${node.custodian}, key ${key}`];
    }
    if ("repository" in node) return [`${indent}repository ${node.repository} (held by the node)`];
    return [`${indent}tpm ${node.tpm}, PCRs ${(node.pcrs ?? [7]).join(",")} (held by the node)`];
  };
  return walk(tree, "root", "  ");
}

/** Runs a parse of `file`; a failure is a usage error (exit 2) that names the file. */
export function parseOrUsage<T>(parse: () => T, file: string): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${file}: ${(err as Error).message}`, EXIT.usage);
  }
}

/**
 * A custodian's step (unseal, rekey submit or confirm): reads their share file
 * (either form) and private key file, checks they belong to the same
 * custodian, asks for the passphrase and opens the share. The private key is
 * wiped whatever happens; the opened share is the caller's to dispose.
 */
export async function openCustodianShare(
  sharePath: string,
  identityPath: string,
  passphraseFile?: string,
): Promise<OpenedShare> {
  const shareFile = parseOrUsage(() => parseAnyShareFile(readJsonFile(sharePath, "share file")), sharePath);
  const keyFile = parseOrUsage(
    () => parsePrivateKeyFile(readJsonFile(identityPath, "private key file")),
    identityPath,
  );
  if (keyFile.custodian !== shareFile.custodian) {
    throw new CliError(
      `the share belongs to '${shareFile.custodian}' but the key to '${keyFile.custodian}'`,
      EXIT.usage,
    );
  }
  const passphrase = await readPassphrase(
    passphraseFile,
    `Passphrase for ${keyFile.custodian}'s private key: `,
  );
  const privateKey = await openPrivateKeyFile(keyFile, passphrase).catch((err: Error) => {
    throw new CliError(`${identityPath}: ${err.message}`, EXIT.usage);
  });
  return shareFile
    .open(privateKey)
    .catch((err: Error) => {
      throw new CliError(`${sharePath}: ${err.message}`, EXIT.usage);
    })
    .finally(() => privateKey.dispose());
}
