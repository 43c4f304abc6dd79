/**
 * Ceremony kinds (docs/FORMATS.md §5.3–§5.4, §5.9) on a real node in
 * process: every kind of ceremony — an unseal, a rekey's quorum and
 * confirmation, a root rotation's quorum and confirmation — refuses a share
 * sealed for each of the other kinds, by name (`wrong_kind`, saying what it
 * was sealed for and what this is); the signature each one publishes
 * verifies for its own kind and binding only (the new tree's digest, and the
 * new init id once confirming); the routes refuse the submission formats from
 * before kinds by name. The attack these close is test/e2e/attack-ceremony.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CustosNode, openNode } from "../../src/api/server.js";
import { b64u, hex } from "../../src/crypto/bytes.js";
import { CEREMONY_KINDS, type CeremonyKind, describeKind } from "../../src/custody/ceremony-kind.js";
import type { ChangeStatus } from "../../src/custody/custody-change.js";
import { makeUnsealSubmission } from "../../src/custody/flat-submission.js";
import { type CeremonyStatement, verifyCeremony } from "../../src/custody/node-identity.js";
import { openShareFile, type ShareFile } from "../../src/custody/share-format.js";
import type { TreeInput } from "../../src/custody/tree.js";
import { changeBinding, treeDigest } from "../../src/custody/tree-digest.js";
import {
  makeTreeUnsealSubmission,
  openTreeShareFile,
  type TreeShareFile,
} from "../../src/custody/tree-share-format.js";
import { type Person, people, pub, submission } from "../helpers/custodians.js";

let dir: string;
let node: CustosNode;
let team: Person[];
let files: ShareFile[];
let nodeKey: Uint8Array;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "custos-kinds-"));
  node = await openNode({ dataDir: dir, log: pino({ level: "silent" }) });
  team = people(["alice", "bob", "carol"]);
  const init = await node.seal.init(
    2,
    team.map((p) => ({ id: p.id, publicKey: pub(p) })),
  );
  files = init.shareFiles;
  nodeKey = b64u.decode(node.seal.status().nodePublicKey, "node");
});

afterAll(async () => {
  await node?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Published {
  nonce: string | null;
  ceremonyPublicKey: string | null;
  ceremonySignature: string | null;
}

/** Alice's current share sealed to the published ceremony key as `kind`. */
async function aliceFor(kind: CeremonyKind, c: Published) {
  const payload = await openShareFile(files[0]!, team[0]!.privateKey);
  try {
    return await makeUnsealSubmission(
      payload,
      kind,
      hex.decode(c.nonce!, "nonce"),
      b64u.decode(c.ceremonyPublicKey!, "key"),
    );
  } finally {
    payload.share.dispose();
  }
}

/** A new (tree) share file sealed back to the published ceremony key as `kind`. */
async function newShareFor(kind: CeremonyKind, file: TreeShareFile, c: Published) {
  const payload = await openTreeShareFile(file, team.find((p) => p.id === file.custodian)!.privateKey);
  try {
    return await makeTreeUnsealSubmission(
      payload,
      kind,
      hex.decode(c.nonce!, "nonce"),
      b64u.decode(c.ceremonyPublicKey!, "key"),
    );
  } finally {
    payload.value.dispose();
  }
}

/** The kinds (with their bindings) the published signature verifies for. */
function signedAs(c: Published, initId: string, bindings: Partial<Record<CeremonyKind, Uint8Array>>) {
  const statement = (kind: CeremonyKind): CeremonyStatement => ({
    kind,
    initId: hex.decode(initId, "initId"),
    nonce: hex.decode(c.nonce!, "nonce"),
    ceremonyPublicKey: b64u.decode(c.ceremonyPublicKey!, "key"),
    binding: bindings[kind] ?? new Uint8Array(0),
  });
  const sig = b64u.decode(c.ceremonySignature!, "sig");
  return CEREMONY_KINDS.filter((k) => verifyCeremony(nodeKey, sig, statement(k)));
}

const refusal = (made: CeremonyKind, wanted: CeremonyKind) =>
  new RegExp(`refused: this share was sealed for ${describeKind(made)}, not ${describeKind(wanted)}`);

describe("each kind of ceremony refuses every other kind's submission", () => {
  for (const kind of ["rekey", "rotate-root"] as const) {
    it(`${kind}: its quorum and its confirmation each refuse the four other kinds, by name`, async () => {
      const initId = node.seal.config!.initId;
      const tree: TreeInput = {
        threshold: 2,
        of: team.map((p) => ({ custodian: p.id, publicKey: pub(p) })),
      };
      let s: ChangeStatus = await node.custody.start(kind, kind === "rekey" ? tree : undefined, "test");
      expect(s.ceremonyKind).toBe(kind);
      const digest = treeDigest(s.newTree as TreeInput);
      expect(hex.encode(digest)).toBe(s.treeDigest);
      // Signed for this kind and this tree only.
      const all = Object.fromEntries(CEREMONY_KINDS.map((k) => [k, digest]));
      expect(signedAs(s, initId, all)).toEqual([kind]);
      expect(signedAs(s, initId, { ...all, [kind]: treeDigest({ ...tree, threshold: 3 }) })).toEqual([]);

      for (const made of CEREMONY_KINDS.filter((k) => k !== kind)) {
        await expect(node.custody.submit(await aliceFor(made, s))).rejects.toThrow(refusal(made, kind));
      }
      expect(node.custody.status().submitted).toEqual([]);
      for (const i of [0, 1]) s = await node.custody.submit(await submission(files[i]!, team[i]!, s));
      expect(s.phase).toBe("confirming");
      const confirmKind: CeremonyKind = `${kind}-confirm`;
      expect(s.ceremonyKind).toBe(confirmKind);
      const bound = changeBinding(digest, hex.decode(s.newInitId!, "newInitId"));
      expect(signedAs(s, initId, { ...all, [confirmKind]: bound })).toEqual([confirmKind]);

      const newFiles = s.shareFiles as TreeShareFile[];
      for (const made of CEREMONY_KINDS.filter((k) => k !== confirmKind)) {
        await expect(node.custody.confirm(await newShareFor(made, newFiles[0]!, s))).rejects.toThrow(
          refusal(made, confirmKind),
        );
      }
      expect(node.custody.status().confirmed).toEqual([]);
      s = await node.custody.confirm(await newShareFor(confirmKind, newFiles[0]!, s));
      expect(s.confirmed).toEqual([newFiles[0]!.path]);
      await node.custody.cancel("test");
      expect(node.seal.config!.initId).toBe(initId);
    });
  }

  it("unseal: refuses the four other kinds, by name, then unseals with unseal-kind shares", async () => {
    await node.seal.seal("test");
    const st = node.seal.status();
    expect(signedAs(st, st.initId!, {})).toEqual(["unseal"]);
    for (const made of CEREMONY_KINDS.filter((k) => k !== "unseal")) {
      const err = await node.seal.submit(await aliceFor(made, st)).catch((e: unknown) => e);
      expect(err).toMatchObject({ status: 409, details: { reason: "wrong_kind", custodian: "alice" } });
      expect(String(err)).toMatch(refusal(made, "unseal"));
    }
    expect(node.seal.status().progress).toBe(0);
    const denied = await node.store.searchAudit({ operation: "sys.unseal.submit" });
    expect(denied.at(-1)?.event.reason).toMatch(/^wrong_kind: this share was sealed for/);
    for (const i of [1, 2]) await node.seal.submit(await submission(files[i]!, team[i]!, node.seal.status()));
    expect(node.seal.sealed).toBe(false);
  });
});

describe("the routes refuse submissions from before ceremony kinds", () => {
  it("custos-unseal/v1 and /v2 are 400 unsupported_format on unseal, rekey submit and confirm", async () => {
    const legacy = {
      v1: {
        format: "custos-unseal/v1",
        nonce: "0".repeat(32),
        custodian: "alice",
        enc: "AA",
        ciphertext: "AA",
      },
      v2: {
        format: "custos-unseal/v2",
        nonce: "0".repeat(32),
        path: "root/custodian:alice",
        enc: "AA",
        ciphertext: "AA",
      },
    };
    for (const path of ["/v1/sys/unseal", "/v1/sys/rekey/submit", "/v1/sys/rekey/confirm"]) {
      for (const [v, body] of Object.entries(legacy)) {
        const res = await node.app.request(path, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        expect(res.status, `${path} ${v}`).toBe(400);
        const { error } = (await res.json()) as { error: { code: string; message: string } };
        expect(error.code).toBe("unsupported_format");
        expect(error.message).toMatch(/submissions are no longer accepted: they do not say which ceremony/);
      }
    }
  });
});
