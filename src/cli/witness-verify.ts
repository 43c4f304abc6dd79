/**
 * The witness part of `custos audit verify` (docs/FORMATS.md §8.3): checks the
 * countersignatures the node served with its head, fetches each `--witness`
 * URL's view of this log (its status and every head it countersigned) and
 * checks it against the events the auditor already holds, then asks the node
 * for a consistency proof from each witness's newest head to the node's head.
 * The checks themselves are in src/audit/witness-check.ts; this file is the
 * fetching and the report. Witness reads need no token.
 */

import { verifyConsistency } from "../audit/merkle.js";
import { type TreeHeadJson, treeHeadFromJson } from "../audit/tree-head.js";
import type { WitnessStatus } from "../audit/witness.js";
import {
  bySize,
  checkCosignature,
  checkWitnessView,
  rootsAtSizes,
  type WitnessProblem,
} from "../audit/witness-check.js";
import { readWitnessPublicKeyFile, type WitnessPublicKey } from "../audit/witness-key.js";
import { b64u, hex } from "../crypto/bytes.js";
import { CliError, Client, EXIT } from "./client.js";

export type ServedHead = TreeHeadJson & { cosignatures?: unknown[] };

/**
 * The node's log as the witness checks need it: its events, or an export
 * already scanned once (export-read.ts), given as its size and its roots at
 * the sizes the countersignatures name.
 */
export type LogView =
  | readonly { canonical: string }[]
  | { count: number; roots: ReadonlyMap<number, Uint8Array> };

export interface WitnessReport {
  ok: boolean;
  /** The problem with the smallest size, the first bad index. */
  first: WitnessProblem | null;
  cosignatures: { checked: number; problems: WitnessProblem[] };
  witnesses: {
    url: string;
    witness: string;
    heads: number;
    newestSize: number | null;
    problems: WitnessProblem[];
  }[];
}

export function readWitnessPins(files: readonly string[]): WitnessPublicKey[] | undefined {
  if (files.length === 0) return undefined;
  return files.map((file) => {
    try {
      return readWitnessPublicKeyFile(file);
    } catch (err) {
      throw new CliError(`--witness-key ${file}: ${(err as Error).message}`, EXIT.usage);
    }
  });
}

interface HeadsPage {
  heads: { head: TreeHeadJson; cosignature: unknown }[];
  next: number | null;
}

export type WitnessView = Awaited<ReturnType<typeof fetchView>>;

/**
 * What each witness has countersigned of `log`. Fetch it before the node's
 * events: a witness keeps countersigning while the events are read, and a
 * view newer than the events would name sizes the events do not reach yet.
 */
export function fetchWitnessViews(urls: readonly string[], log: string): Promise<WitnessView[]> {
  return Promise.all(urls.map((url) => fetchView(url, log)));
}

async function fetchView(url: string, log: string) {
  const client = new Client({ addr: url });
  const status = await client.request<WitnessStatus>("GET", "/v1/witness/status", undefined, { auth: false });
  const heads: HeadsPage["heads"] = [];
  let next: number | null = 1;
  while (next !== null) {
    const page: HeadsPage = await client.request<HeadsPage>(
      "GET",
      `/v1/witness/heads?log=${log}&from=${next}`,
      undefined,
      { auth: false },
    );
    heads.push(...page.heads);
    next = page.next;
  }
  const mine = status.logs.find((l) => l.log === log);
  return { url: client.addr, name: status.witness, heads, alarm: mine?.alarm ?? null };
}

/**
 * `nodeProof` fetches a consistency proof from the node (absent offline, when
 * the events alone are the evidence).
 */
export async function verifyWitnessing(
  served: ServedHead | null,
  events: LogView,
  witnessUrls: readonly string[],
  pins: readonly WitnessPublicKey[] | undefined,
  nodeProof?: (from: number, to: number) => Promise<string[]>,
  prefetched?: readonly WitnessView[],
): Promise<WitnessReport> {
  if (served === null) {
    if (witnessUrls.length > 0) {
      throw new CliError(
        "the node has no signed head yet, so there is nothing to compare with witnesses",
        EXIT.refused,
      );
    }
    return { ok: true, first: null, cosignatures: { checked: 0, problems: [] }, witnesses: [] };
  }
  const logKey = b64u.decode(served.publicKey, "head.publicKey");
  const log = served.publicKey;
  const views = prefetched ?? (await fetchWitnessViews(witnessUrls, log));
  const cosignatures = Array.isArray(served.cosignatures) ? served.cosignatures : [];
  const sizes = [
    ...cosignatures.map((c) => (c as { size?: number })?.size ?? 0),
    ...views.flatMap((v) => v.heads.map((h) => h.head?.size ?? 0)),
  ];
  const facts =
    "count" in events
      ? { logKey, roots: events.roots, eventCount: events.count, pins }
      : { logKey, roots: rootsAtSizes(events, sizes), eventCount: events.length, pins };
  const cosignatureProblems = cosignatures
    .map((c) => checkCosignature(c, facts))
    .filter((p): p is WitnessProblem => p !== null);
  const nodeHead = treeHeadFromJson(served).head;
  const witnesses: WitnessReport["witnesses"] = [];
  for (const view of views) {
    const check = checkWitnessView(view, facts);
    const latest = check.latest;
    if (nodeProof && latest && check.problems.length === 0 && latest.size <= nodeHead.size) {
      const proof = (await nodeProof(latest.size, nodeHead.size)).map((p, i) => hex.decode(p, `proof[${i}]`));
      if (!verifyConsistency(latest.size, nodeHead.size, proof, latest.root, nodeHead.root)) {
        check.problems.push({
          size: latest.size,
          witness: view.name,
          problem:
            `the node's head of size ${nodeHead.size} is not consistent with witness ${view.name}'s ` +
            `head of size ${latest.size} (the node's consistency proof does not verify)`,
        });
      }
    }
    witnesses.push({
      url: view.url,
      witness: view.name,
      heads: check.heads,
      newestSize: latest?.size ?? null,
      problems: check.problems,
    });
  }
  const all = [...cosignatureProblems, ...witnesses.flatMap((w) => w.problems)];
  return {
    ok: all.length === 0,
    first: all.sort(bySize)[0] ?? null,
    cosignatures: { checked: cosignatures.length, problems: cosignatureProblems },
    witnesses,
  };
}

export function witnessLines(report: WitnessReport): string[] {
  const lines: string[] = [];
  const { checked, problems } = report.cosignatures;
  if (checked > 0) {
    lines.push(
      problems.length === 0
        ? `Countersignatures served with the head: ${checked} verified against the events.`
        : `Countersignatures served with the head FAILED: ${problems.map((p) => p.problem).join("; ")}`,
    );
  }
  for (const w of report.witnesses) {
    lines.push(
      w.problems.length === 0
        ? `Witness ${w.witness} (${w.url}): ${w.heads} countersigned heads agree with the node's log` +
            (w.newestSize === null ? "." : `; newest size ${w.newestSize}, consistent with the node's head.`)
        : `Witness ${w.witness} (${w.url}) DISAGREES: ${w.problems.map((p) => p.problem).join("; ")}`,
    );
  }
  return lines;
}
