/**
 * HPKE against the RFC 9180 test vectors for our exact suite,
 * DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, mode base. The
 * vectors are a data file with a note of their source.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hex } from "../../src/crypto/bytes.js";
import {
  createHpkeSuite,
  HPKE_AEAD_ID,
  HPKE_KDF_ID,
  HPKE_KEM_ID,
  hpkeOpen,
  x25519PublicKey,
} from "../../src/crypto/hpke.js";
import { Secret } from "../../src/crypto/secret.js";

interface Encryption {
  seq: number;
  aad: string;
  pt: string;
  ct: string;
}
interface Vector {
  mode: number;
  info: string;
  skRm: string;
  pkRm: string;
  skEm: string;
  pkEm: string;
  enc: string;
  encryptions: Encryption[];
  exports: { exporter_context: string; L: number; exported_value: string }[];
}
interface VectorFile {
  suite: { kem_id: number; kdf_id: number; aead_id: number };
  vectors: Vector[];
  derive_key_pair: { ikmR: string; skRm: string; pkRm: string; ikmE: string; skEm: string; pkEm: string };
}

const file = JSON.parse(
  readFileSync(new URL("../vectors/rfc9180-x25519-sha256-aes256gcm.json", import.meta.url), "utf8"),
) as VectorFile;
const h = (s: string): Uint8Array => hex.decode(s, "vector");
const base = file.vectors.find((v) => v.mode === 0);
if (base === undefined) throw new Error("the vector file has no mode-base vector");
const v: Vector = base;
const lastSeq = Math.max(...v.encryptions.map((e) => e.seq));
const aadOf = (seq: number): Uint8Array => new TextEncoder().encode(`Count-${seq}`);

describe("RFC 9180 test vectors, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM", () => {
  it("the vector file is for this module's suite (0x0020, 0x0001, 0x0002)", () => {
    expect(file.suite).toEqual({ kem_id: HPKE_KEM_ID, kdf_id: HPKE_KDF_ID, aead_id: HPKE_AEAD_ID });
    expect(v.enc).toBe(v.pkEm);
    // The generated aad is what the vectors use, so sender-made ciphertexts can fill the gaps.
    for (const e of v.encryptions) expect(hex.encode(aadOf(e.seq))).toBe(e.aad);
  });

  it("x25519PublicKey derives pkRm from skRm and pkEm from skEm", () => {
    expect(hex.encode(x25519PublicKey(Secret.of(h(v.skRm))))).toBe(v.pkRm);
    expect(hex.encode(x25519PublicKey(Secret.of(h(v.skEm))))).toBe(v.pkEm);
    const d = file.derive_key_pair;
    expect(hex.encode(x25519PublicKey(Secret.of(h(d.skRm))))).toBe(d.pkRm);
    expect(hex.encode(x25519PublicKey(Secret.of(h(d.skEm))))).toBe(d.pkEm);
  });

  it("DeriveKeyPair(ikm) gives the published key pairs (RFC 9180 A.1.1, same KEM)", async () => {
    const suite = createHpkeSuite();
    const d = file.derive_key_pair;
    for (const [ikm, sk, pk] of [
      [d.ikmR, d.skRm, d.pkRm],
      [d.ikmE, d.skEm, d.pkEm],
    ] as const) {
      const pair = await suite.kem.deriveKeyPair(h(ikm));
      expect(hex.encode(new Uint8Array(await suite.kem.serializePrivateKey(pair.privateKey)))).toBe(sk);
      expect(hex.encode(new Uint8Array(await suite.kem.serializePublicKey(pair.publicKey)))).toBe(pk);
    }
  });

  it("hpkeOpen opens the sequence-0 encryption with skRm, enc, info and aad", async () => {
    const first = v.encryptions.find((e) => e.seq === 0)!;
    const pt = await hpkeOpen(Secret.of(h(v.skRm)), h(v.enc), h(first.ct), h(v.info), h(first.aad));
    expect(hex.encode(pt)).toBe(first.pt);
  });

  it("the key schedule reproduces enc, every listed ciphertext and every export from skEm", async () => {
    const suite = createHpkeSuite();
    const ephemeral = {
      privateKey: await suite.kem.deserializePrivateKey(h(v.skEm)),
      publicKey: await suite.kem.deserializePublicKey(h(v.pkEm)),
    };
    const sender = await suite.createSenderContext({
      recipientPublicKey: await suite.kem.deserializePublicKey(h(v.pkRm)),
      info: h(v.info),
      ekm: ephemeral,
    });
    expect(hex.encode(new Uint8Array(sender.enc))).toBe(v.enc);
    const pt = h(v.encryptions[0]!.pt);
    const made = new Map<number, Uint8Array>();
    for (let seq = 0; seq <= lastSeq; seq++) made.set(seq, new Uint8Array(await sender.seal(pt, aadOf(seq))));
    for (const e of v.encryptions) expect(hex.encode(made.get(e.seq)!), `seq ${e.seq}`).toBe(e.ct);
    for (const x of v.exports) {
      const value = new Uint8Array(await sender.export(h(x.exporter_context), x.L));
      expect(hex.encode(value)).toBe(x.exported_value);
    }
  });

  it("a recipient context opens every listed encryption in sequence and derives every export", async () => {
    const suite = createHpkeSuite();
    const recipient = await suite.createRecipientContext({
      recipientKey: await suite.kem.deserializePrivateKey(h(v.skRm)),
      enc: h(v.enc),
      info: h(v.info),
    });
    // The unlisted sequence numbers are filled with ciphertexts sealed to the same context.
    const sender = await suite.createSenderContext({
      recipientPublicKey: await suite.kem.deserializePublicKey(h(v.pkRm)),
      info: h(v.info),
      ekm: {
        privateKey: await suite.kem.deserializePrivateKey(h(v.skEm)),
        publicKey: await suite.kem.deserializePublicKey(h(v.pkEm)),
      },
    });
    const listed = new Map(v.encryptions.map((e) => [e.seq, e]));
    const pt = h(v.encryptions[0]!.pt);
    for (let seq = 0; seq <= lastSeq; seq++) {
      const filler = new Uint8Array(await sender.seal(pt, aadOf(seq)));
      const e = listed.get(seq);
      const ct = e === undefined ? filler : h(e.ct);
      const opened = new Uint8Array(await recipient.open(ct, aadOf(seq)));
      if (e !== undefined) expect(hex.encode(opened), `seq ${seq}`).toBe(e.pt);
    }
    for (const x of v.exports) {
      const value = new Uint8Array(await recipient.export(h(x.exporter_context), x.L));
      expect(hex.encode(value)).toBe(x.exported_value);
    }
  });
});
