import { describe, expect, it } from "vitest";
import { b64u, concatBytes, hex, randomBytes, u8, utf8 } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair, hpkeSeal } from "../../src/crypto/hpke.js";
import { Secret } from "../../src/crypto/secret.js";
import {
  combineShares,
  keyCheckValue,
  splitRootKey,
  verifyShareCommitment,
} from "../../src/crypto/shamir.js";
import { CEREMONY_KINDS } from "../../src/custody/ceremony-kind.js";
import { fingerprint } from "../../src/custody/custodian-key.js";
import {
  makeUnsealSubmission,
  openUnsealSubmission,
  parseUnsealSubmission,
  type UnsealSubmission,
} from "../../src/custody/flat-submission.js";
import { FormatError } from "../../src/custody/format-error.js";
import { NodeIdentity } from "../../src/custody/node-identity.js";
import {
  decodeSharePayload,
  encodeSharePayload,
  openShareFile,
  parseShareFile,
  type ShareFile,
  ShareOpenError,
  sealShareFile,
} from "../../src/custody/share-format.js";
import { formatField } from "../helpers/format-field.js";

const HOLDERS = ["alice", "bruno", "carol"];

/** An init for 2-of-3, with every custodian's key pair and sealed share file. */
const NODE_KEY = NodeIdentity.generate().publicKey;

async function initFixture() {
  const rk = Secret.random(32);
  const initId = randomBytes(16);
  const split = await splitRootKey(rk, HOLDERS, 2, initId);
  const keys = HOLDERS.map(() => generateX25519KeyPair());
  const files: ShareFile[] = [];
  for (const s of split.shares) {
    files.push(
      await sealShareFile({
        initId,
        index: s.index,
        holder: s.holder,
        threshold: 2,
        shares: 3,
        recipientPublicKey: keys[s.index - 1]!.publicKey,
        share: s.share,
        commitment: split.commitments[s.index - 1]!,
        nodePublicKey: NODE_KEY,
      }),
    );
  }
  return { rk, initId, split, keys, files, kcv: keyCheckValue(rk) };
}

/** The file as it comes back from disk. */
const reread = <T>(x: T): unknown => JSON.parse(JSON.stringify(x));

async function openFailure(p: Promise<unknown>): Promise<ShareOpenError> {
  const err = await p.then(
    () => new Error("opened, but should not have"),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ShareOpenError);
  return err as ShareOpenError;
}

describe("share payload", () => {
  it("is u8(1) ‖ initId ‖ u8(i) ‖ u8(len c) ‖ c ‖ share(33), and decodes back", () => {
    const initId = randomBytes(16);
    const share = randomBytes(33);
    const bytes = encodeSharePayload({
      initId,
      index: 3,
      holder: "carol",
      share: Secret.of(Uint8Array.from(share)),
    });
    expect(hex.encode(bytes)).toBe(
      hex.encode(concatBytes(u8(1), initId, u8(3), u8(5), utf8("carol"), share)),
    );
    const back = decodeSharePayload(bytes);
    expect(back.initId).toEqual(initId);
    expect(back.index).toBe(3);
    expect(back.holder).toBe("carol");
    expect(back.share.reveal()).toEqual(share);
  });

  it("refuses another version, a wrong length, index 0 and an invalid holder, naming the field", () => {
    const good = encodeSharePayload({
      initId: randomBytes(16),
      index: 1,
      holder: "al",
      share: Secret.random(33),
    });
    const edit = (i: number, b: number) => {
      const c = Uint8Array.from(good);
      c[i] = b;
      return c;
    };
    expect(formatField(() => decodeSharePayload(edit(0, 2)))).toBe("payload.version");
    expect(formatField(() => decodeSharePayload(good.subarray(0, good.length - 1)))).toBe("payload");
    expect(formatField(() => decodeSharePayload(concatBytes(good, u8(0))))).toBe("payload");
    expect(formatField(() => decodeSharePayload(edit(17, 0)))).toBe("payload.index");
    expect(formatField(() => decodeSharePayload(edit(19, 0x41)))).toBe("payload.holder");
    expect(formatField(() => decodeSharePayload(new Uint8Array(0)))).toBe("payload");
  });
});

describe("share files (custos-share/v1)", () => {
  it("round-trip: sealed at init, written as JSON, read back and opened by the custodian", async () => {
    const { files, keys, split, initId } = await initFixture();
    for (const [i, file] of files.entries()) {
      expect(file).toMatchObject({
        format: "custos-share/v1",
        initId: hex.encode(initId),
        custodian: HOLDERS[i],
        index: i + 1,
        threshold: 2,
        shares: 3,
        recipient: fingerprint(keys[i]!.publicKey),
        commitment: b64u.encode(split.commitments[i]!),
      });
      const parsed = parseShareFile(reread(file));
      expect(parsed).toEqual(file);
      const payload = await openShareFile(parsed, keys[i]!.privateKey);
      expect(payload.initId).toEqual(initId);
      expect(payload.index).toBe(i + 1);
      expect(payload.holder).toBe(HOLDERS[i]);
      expect(payload.share.reveal()).toEqual(split.shares[i]!.share.reveal());
    }
  });

  it.each([
    ["another custodian", (f: ShareFile) => ({ ...f, custodian: "carla" })],
    ["another index", (f: ShareFile) => ({ ...f, index: 2 })],
    ["another init id", (f: ShareFile) => ({ ...f, initId: hex.encode(randomBytes(16)) })],
    // An impostor's key swapped in would make the CLI trust the impostor's ceremony.
    ["another node key", (f: ShareFile) => ({ ...f, node: b64u.encode(NodeIdentity.generate().publicKey) })],
  ])("a file relabelled with %s does not open", async (_, relabel) => {
    const { files, keys } = await initFixture();
    const relabelled = parseShareFile(relabel(files[0]!));
    const err = await openFailure(openShareFile(relabelled, keys[0]!.privateKey));
    expect(err.reason).toBe("undecryptable");
  });

  it("a file with an altered ciphertext or enc does not open", async () => {
    const { files, keys } = await initFixture();
    for (const field of ["ciphertext", "enc"] as const) {
      const bytes = b64u.decode(files[0]![field], field);
      bytes[3]! ^= 0x10;
      const err = await openFailure(
        openShareFile({ ...files[0]!, [field]: b64u.encode(bytes) }, keys[0]!.privateKey),
      );
      expect(err.reason).toBe("undecryptable");
    }
  });

  it("another custodian's key is told apart from a bad file: wrong_recipient, naming both fingerprints", async () => {
    const { files, keys } = await initFixture();
    const err = await openFailure(openShareFile(files[0]!, keys[1]!.privateKey));
    expect(err.reason).toBe("wrong_recipient");
    expect(err.message).toContain(fingerprint(keys[0]!.publicKey));
    expect(err.message).toContain(fingerprint(keys[1]!.publicKey));
    // Pointing the recipient at the wrong key does not help: HPKE still refuses.
    const retargeted = { ...files[0]!, recipient: fingerprint(keys[1]!.publicKey) };
    expect((await openFailure(openShareFile(retargeted, keys[1]!.privateKey))).reason).toBe("undecryptable");
  });

  it("a commitment field that does not match the share inside is refused", async () => {
    const { files, keys, split } = await initFixture();
    const swapped = { ...files[0]!, commitment: b64u.encode(split.commitments[1]!) };
    expect((await openFailure(openShareFile(swapped, keys[0]!.privateKey))).reason).toBe("payload_mismatch");
  });

  it("sealShareFile refuses a commitment of another share, a low-order key and an index beyond N", async () => {
    const { split, initId, keys } = await initFixture();
    const args = {
      initId,
      index: 1,
      holder: "alice",
      threshold: 2,
      shares: 3,
      recipientPublicKey: keys[0]!.publicKey,
      share: split.shares[0]!.share,
      commitment: split.commitments[0]!,
      nodePublicKey: NODE_KEY,
    };
    await expect(sealShareFile({ ...args, commitment: split.commitments[1]! })).rejects.toThrow(/commitment/);
    await expect(sealShareFile({ ...args, recipientPublicKey: new Uint8Array(32) })).rejects.toThrow(
      /low-order/,
    );
    await expect(sealShareFile({ ...args, index: 4 })).rejects.toThrow(/index/);
    await expect(sealShareFile({ ...args, threshold: 4 })).rejects.toThrow(/threshold/);
  });

  describe("parseShareFile refuses each malformed field, naming it", () => {
    const cases: [string, (f: Record<string, unknown>) => unknown][] = [
      ["format", (f) => ({ ...f, format: "custos-share/v2" })],
      ["format", (f) => ({ ...f, format: undefined })],
      ["initId", (f) => ({ ...f, initId: (f.initId as string).toUpperCase() })],
      ["initId", (f) => ({ ...f, initId: (f.initId as string).slice(2) })],
      ["custodian", (f) => ({ ...f, custodian: "Alice" })],
      ["custodian", (f) => ({ ...f, custodian: 7 })],
      ["index", (f) => ({ ...f, index: 0 })],
      ["index", (f) => ({ ...f, index: 4 })],
      ["index", (f) => ({ ...f, index: "1" })],
      ["threshold", (f) => ({ ...f, threshold: 1 })],
      ["threshold", (f) => ({ ...f, threshold: 4 })],
      ["shares", (f) => ({ ...f, shares: 33 })],
      ["shares", (f) => ({ ...f, shares: 2.5 })],
      ["recipient", (f) => ({ ...f, recipient: "sha1:abc" })],
      ["recipient", (f) => ({ ...f, recipient: `${f.recipient as string}=` })],
      ["commitment", (f) => ({ ...f, commitment: (f.commitment as string).slice(4) })],
      ["commitment", (f) => ({ ...f, commitment: `${f.commitment as string}=` })],
      ["enc", (f) => ({ ...f, enc: b64u.encode(new Uint8Array(31)) })],
      ["ciphertext", (f) => ({ ...f, ciphertext: (f.ciphertext as string).slice(0, -4) })],
      ["ciphertext", (f) => ({ ...f, ciphertext: `${f.ciphertext as string} ` })],
      ["surprise", (f) => ({ ...f, surprise: true })],
    ];
    it.each(cases)("%s", async (field, mutate) => {
      const { files } = await initFixture();
      expect(formatField(() => parseShareFile(mutate(reread(files[0]) as Record<string, unknown>)))).toBe(
        field,
      );
    });

    it("and refuses what is not an object", () => {
      for (const bad of [null, [], "share", 3]) expect(() => parseShareFile(bad)).toThrow(FormatError);
    });
  });
});

describe("ceremony submissions (custos-unseal/v3)", () => {
  async function ceremonyFixture() {
    const init = await initFixture();
    const payload = await openShareFile(init.files[0]!, init.keys[0]!.privateKey);
    const ceremony = { nonce: randomBytes(16), ...generateX25519KeyPair() };
    const sub = await makeUnsealSubmission(payload, "unseal", ceremony.nonce, ceremony.publicKey);
    return { ...init, payload, ceremony, sub };
  }

  it("round-trip: made by the CLI, sent as JSON, parsed and opened by the server", async () => {
    const { sub, ceremony, payload } = await ceremonyFixture();
    expect(sub).toMatchObject({
      format: "custos-unseal/v3",
      ceremony: "unseal",
      nonce: hex.encode(ceremony.nonce),
      custodian: "alice",
    });
    const parsed = parseUnsealSubmission(reread(sub));
    expect(parsed).toEqual(sub);
    const opened = await openUnsealSubmission(parsed, ceremony.privateKey, ceremony.nonce, "unseal");
    expect(opened.initId).toEqual(payload.initId);
    expect(opened.index).toBe(1);
    expect(opened.holder).toBe("alice");
    expect(opened.share.reveal()).toEqual(payload.share.reveal());
  });

  it("a submission for another ceremony nonce fails: wrong_ceremony, and undecryptable if the nonce is rewritten", async () => {
    const { sub, ceremony } = await ceremonyFixture();
    const later = randomBytes(16);
    expect((await openFailure(openUnsealSubmission(sub, ceremony.privateKey, later, "unseal"))).reason).toBe(
      "wrong_ceremony",
    );
    const rewritten = { ...sub, nonce: hex.encode(later) };
    expect(
      (await openFailure(openUnsealSubmission(rewritten, ceremony.privateKey, later, "unseal"))).reason,
    ).toBe("undecryptable");
  });

  it("a submission sealed for one kind of ceremony opens in no other: wrong_kind, and undecryptable if the kind is rewritten", async () => {
    const { ceremony, payload } = await ceremonyFixture();
    for (const made of CEREMONY_KINDS) {
      const sub = await makeUnsealSubmission(payload, made, ceremony.nonce, ceremony.publicKey);
      expect((await openUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce, made)).holder).toBe(
        "alice",
      );
      for (const other of CEREMONY_KINDS.filter((k) => k !== made)) {
        const open = (s: UnsealSubmission) =>
          openUnsealSubmission(s, ceremony.privateKey, ceremony.nonce, other);
        expect((await openFailure(open(sub))).reason).toBe("wrong_kind");
        expect((await openFailure(open({ ...sub, ceremony: other }))).reason).toBe("undecryptable");
      }
    }
  });

  it("a submission does not open with another ceremony's key", async () => {
    const { sub, ceremony } = await ceremonyFixture();
    const other = generateX25519KeyPair();
    expect(
      (await openFailure(openUnsealSubmission(sub, other.privateKey, ceremony.nonce, "unseal"))).reason,
    ).toBe("undecryptable");
  });

  it("a submission relabelled with another custodian does not open", async () => {
    const { sub, ceremony } = await ceremonyFixture();
    const relabelled: UnsealSubmission = { ...sub, custodian: "alina" };
    expect(
      (await openFailure(openUnsealSubmission(relabelled, ceremony.privateKey, ceremony.nonce, "unseal")))
        .reason,
    ).toBe("undecryptable");
  });

  it("a payload whose custodian is not the submitter is refused (payload_mismatch)", async () => {
    const { ceremony, payload } = await ceremonyFixture();
    // Someone holding only the public ceremony key wraps alice's payload as "bruna".
    const plain = encodeSharePayload(payload);
    const aad = concatBytes(u8(5), utf8("bruna"));
    const info = concatBytes(utf8("custos/unseal/v3"), u8(6), utf8("unseal"), ceremony.nonce);
    const { enc, ciphertext } = await hpkeSeal(ceremony.publicKey, plain, info, aad);
    const forged = parseUnsealSubmission({
      format: "custos-unseal/v3",
      ceremony: "unseal",
      nonce: hex.encode(ceremony.nonce),
      custodian: "bruna",
      enc: b64u.encode(enc),
      ciphertext: b64u.encode(ciphertext),
    });
    const err = await openFailure(
      openUnsealSubmission(forged, ceremony.privateKey, ceremony.nonce, "unseal"),
    );
    expect(err.reason).toBe("payload_mismatch");
  });

  it("parseUnsealSubmission refuses each malformed field, naming it", async () => {
    const { sub } = await ceremonyFixture();
    const base = reread(sub) as Record<string, unknown>;
    const cases: [string, unknown][] = [
      ["format", { ...base, format: "custos-unseal/v1" }],
      ["format", { ...base, format: "custos-unseal/v4" }],
      ["ceremony", { ...base, ceremony: "rekey-quorum" }],
      ["ceremony", (({ ceremony: _, ...rest }) => rest)(base)],
      ["nonce", { ...base, nonce: (base.nonce as string).slice(1) }],
      ["nonce", { ...base, nonce: (base.nonce as string).toUpperCase() }],
      ["custodian", { ...base, custodian: "" }],
      ["enc", { ...base, enc: "AAAA" }],
      ["ciphertext", { ...base, ciphertext: `${base.ciphertext as string}AAAA` }],
      ["extra", { ...base, extra: 1 }],
    ];
    for (const [field, json] of cases)
      expect(
        formatField(() => parseUnsealSubmission(json)),
        field,
      ).toBe(field);
  });

  it("end to end: k custodians open their files, submit, and the server reconstructs the root key", async () => {
    const { files, keys, split, kcv, rk } = await initFixture();
    const ceremony = { nonce: randomBytes(16), ...generateX25519KeyPair() };
    const accepted: Uint8Array[] = [];
    for (const i of [2, 0]) {
      const payload = await openShareFile(parseShareFile(reread(files[i])), keys[i]!.privateKey);
      const sub = parseUnsealSubmission(
        reread(await makeUnsealSubmission(payload, "unseal", ceremony.nonce, ceremony.publicKey)),
      );
      const opened = await openUnsealSubmission(sub, ceremony.privateKey, ceremony.nonce, "unseal");
      expect(
        verifyShareCommitment(
          opened.initId,
          opened.index,
          opened.holder,
          opened.share.reveal(),
          split.commitments[i]!,
        ),
      ).toBe(true);
      accepted.push(opened.share.reveal());
    }
    expect((await combineShares(accepted, kcv)).reveal()).toEqual(rk.reveal());
  });
});
