/**
 * Custodians for custody-change tests, in process: raw X25519 key pairs
 * (no passphrase files, so no scrypt), and what the CLI does for them —
 * open a share file (custos-share/v1 or v2) and seal it to a ceremony key,
 * as a current share for a quorum or as the confirmation of a new share.
 */
import { b64u, hex } from "../../src/crypto/bytes.js";
import { generateX25519KeyPair } from "../../src/crypto/hpke.js";
import type { Secret } from "../../src/crypto/secret.js";
import type { CeremonyKind } from "../../src/custody/ceremony-kind.js";
import { makeUnsealSubmission } from "../../src/custody/flat-submission.js";
import { openShareFile, type ShareFile } from "../../src/custody/share-format.js";
import {
  makeTreeUnsealSubmission,
  openTreeShareFile,
  type TreeShareFile,
  type TreeUnsealSubmission,
} from "../../src/custody/tree-share-format.js";

export interface Person {
  id: string;
  publicKey: Uint8Array;
  privateKey: Secret;
}

export function people(ids: string[]): Person[] {
  return ids.map((id) => ({ id, ...generateX25519KeyPair() }));
}

export const pub = (p: Person) => b64u.encode(p.publicKey);

export interface Ceremony {
  nonce: string | null;
  ceremonyPublicKey: string | null;
  /** A change's status names its ceremony's kind; a seal status's ceremony is an unseal. */
  ceremonyKind?: CeremonyKind | null;
}

type AnyShareFile = ShareFile | TreeShareFile;

function ceremonyOf(c: Ceremony): { kind: CeremonyKind; nonce: Uint8Array; key: Uint8Array } {
  if (!c.nonce || !c.ceremonyPublicKey) throw new Error("no ceremony in progress");
  return {
    kind: c.ceremonyKind ?? "unseal",
    nonce: hex.decode(c.nonce, "nonce"),
    key: b64u.decode(c.ceremonyPublicKey, "key"),
  };
}

/** A share file sealed to a ceremony key for its kind: what `custos operator unseal` / `rekey submit` sends. */
export async function submission(file: AnyShareFile, person: Person, c: Ceremony) {
  const { kind, nonce, key } = ceremonyOf(c);
  if (file.format === "custos-share/v2") {
    const payload = await openTreeShareFile(file as TreeShareFile, person.privateKey);
    try {
      return await makeTreeUnsealSubmission(payload, kind, nonce, key);
    } finally {
      payload.value.dispose();
    }
  }
  const payload = await openShareFile(file as ShareFile, person.privateKey);
  try {
    return await makeUnsealSubmission(payload, kind, nonce, key);
  } finally {
    payload.share.dispose();
  }
}

/** The confirmation of a new share: what `custos operator rekey confirm` sends. */
export async function confirmation(
  file: TreeShareFile,
  person: Person,
  c: Ceremony,
): Promise<TreeUnsealSubmission> {
  return (await submission(file, person, c)) as TreeUnsealSubmission;
}
