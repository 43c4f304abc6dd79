/**
 * The envelopes of a custody-tree share (docs/FORMATS.md §5.6–§5.8) refuse
 * every relabelling: a share file with another path or commitment, opened
 * with another key; a submission replayed into another ceremony, claiming
 * another path, or sealed for another kind of ceremony (every pair of kinds,
 * with the kind field kept or rewritten); a repository document for another path or init, tampered, or
 * not a document at all. The round trips work.
 */
import { describe, expect, it } from "vitest";
import { b64u, hex, randomBytes } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair, x25519PublicKey } from "../../src/crypto/hpke.js";
import { Secret } from "../../src/crypto/secret.js";
import { CEREMONY_KINDS } from "../../src/custody/ceremony-kind.js";
import { ShareOpenError } from "../../src/custody/share-format.js";
import {
  makeTreeUnsealSubmission,
  openRepositoryShare,
  openTreeShareFile,
  openTreeUnsealSubmission,
  sealRepositoryShare,
  sealTreeShareFile,
} from "../../src/custody/tree-share-format.js";
import { commitLeaf } from "../../src/custody/tree-split.js";

const initId = randomBytes(16);
const path = "root/2/custodian:alice";
const value = () => Secret.of(Uint8Array.from({ length: 33 }, (_, i) => i + 1));
const node = randomBytes(32);
const alice = generateX25519KeyPair();

const shareFile = () =>
  sealTreeShareFile({
    initId,
    path,
    custodian: "alice",
    recipientPublicKey: alice.publicKey,
    value: value(),
    commitment: commitLeaf(initId, path, value().reveal()),
    nodePublicKey: node,
  });

const reason = async (p: Promise<unknown>) => {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ShareOpenError);
  return (err as ShareOpenError).reason;
};

describe("custos-share/v2", () => {
  it("opens for its custodian with the value, path and init id it was made with", async () => {
    const file = await shareFile();
    expect(file).toMatchObject({
      format: "custos-share/v2",
      path,
      custodian: "alice",
      initId: hex.encode(initId),
    });
    const payload = await openTreeShareFile(file, alice.privateKey);
    expect(payload.path).toBe(path);
    expect(payload.value.reveal()).toEqual(value().reveal());
  });

  it("refuses a relabelled path, a swapped commitment and another custodian's key", async () => {
    const file = await shareFile();
    expect(
      await reason(openTreeShareFile({ ...file, path: "root/1/custodian:alice" }, alice.privateKey)),
    ).toBe("undecryptable");
    const other = b64u.encode(commitLeaf(initId, path, new Uint8Array(33)));
    expect(await reason(openTreeShareFile({ ...file, commitment: other }, alice.privateKey))).toBe(
      "payload_mismatch",
    );
    expect(await reason(openTreeShareFile(file, generateX25519KeyPair().privateKey))).toBe("wrong_recipient");
  });

  it("refuses to seal a value that does not match its commitment", async () => {
    await expect(
      sealTreeShareFile({
        initId,
        path,
        custodian: "alice",
        recipientPublicKey: alice.publicKey,
        value: value(),
        commitment: new Uint8Array(32),
        nodePublicKey: node,
      }),
    ).rejects.toThrow(/commitment does not match the share at root\/2\/custodian:alice/);
  });
});

describe("custos-unseal/v4", () => {
  it("opens in its ceremony; refuses another ceremony and a relabelled path", async () => {
    const ceremony = generateX25519KeyPair();
    const nonce = randomBytes(16);
    const sub = await makeTreeUnsealSubmission(
      { initId, path, value: value() },
      "unseal",
      nonce,
      ceremony.publicKey,
    );
    expect(sub).toMatchObject({ format: "custos-unseal/v4", ceremony: "unseal" });
    const opened = await openTreeUnsealSubmission(sub, ceremony.privateKey, nonce, "unseal");
    expect(opened.path).toBe(path);
    expect(await reason(openTreeUnsealSubmission(sub, ceremony.privateKey, randomBytes(16), "unseal"))).toBe(
      "wrong_ceremony",
    );
    expect(
      await reason(
        openTreeUnsealSubmission(
          { ...sub, path: "root/2/custodian:bob" },
          ceremony.privateKey,
          nonce,
          "unseal",
        ),
      ),
    ).toBe("undecryptable");
    await expect(
      openTreeUnsealSubmission({ ...sub, path: "../x" }, ceremony.privateKey, nonce, "unseal"),
    ).rejects.toThrow(/custody tree path/);
  });

  it("a submission sealed for one kind of ceremony opens in no other, whether or not its kind field is rewritten", async () => {
    const ceremony = generateX25519KeyPair();
    const nonce = randomBytes(16);
    for (const made of CEREMONY_KINDS) {
      const sub = await makeTreeUnsealSubmission(
        { initId, path, value: value() },
        made,
        nonce,
        ceremony.publicKey,
      );
      expect((await openTreeUnsealSubmission(sub, ceremony.privateKey, nonce, made)).path).toBe(path);
      for (const other of CEREMONY_KINDS.filter((k) => k !== made)) {
        expect(await reason(openTreeUnsealSubmission(sub, ceremony.privateKey, nonce, other))).toBe(
          "wrong_kind",
        );
        const relabelled = { ...sub, ceremony: other };
        expect(await reason(openTreeUnsealSubmission(relabelled, ceremony.privateKey, nonce, other))).toBe(
          "undecryptable",
        );
      }
    }
  });
});

describe("custos-repository-share/v1", () => {
  const repoKey = generateX25519KeyPair();
  const repoPath = "root/repository:r1";
  const doc = () =>
    sealRepositoryShare(
      { initId, path: repoPath, value: value() },
      x25519PublicKey(repoKey.privateKey),
      node,
    );
  const bytes = (d: unknown) => new TextEncoder().encode(JSON.stringify(d));
  const expectFor = { initId: hex.encode(initId), path: repoPath };

  it("opens for the node that sealed it", async () => {
    const opened = await openRepositoryShare(bytes(await doc()), repoKey.privateKey, node, expectFor);
    expect(opened.value.reveal()).toEqual(value().reveal());
  });

  it("refuses another path, another init, another node, a tampered ciphertext and a non-document", async () => {
    const d = await doc();
    const open = (b: Uint8Array, n = node, e = expectFor) => openRepositoryShare(b, repoKey.privateKey, n, e);
    expect(await reason(open(bytes(d), node, { ...expectFor, path: "root/repository:r2" }))).toBe(
      "payload_mismatch",
    );
    expect(await reason(open(bytes(d), node, { ...expectFor, initId: "0".repeat(32) }))).toBe(
      "payload_mismatch",
    );
    expect(await reason(open(bytes(d), randomBytes(32)))).toBe("undecryptable");
    const ct = b64u.decode(d.ciphertext, "ct");
    ct[0] = (ct[0] ?? 0) ^ 1;
    expect(await reason(open(bytes({ ...d, ciphertext: b64u.encode(ct) })))).toBe("undecryptable");
    expect(await reason(open(new TextEncoder().encode("not json")))).toBe("payload_mismatch");
    expect(await reason(open(bytes({ ...d, extra: 1 })))).toBe("payload_mismatch");
  });
});
