/**
 * The three envelopes a custody-tree share travels in (docs/FORMATS.md
 * §5.6–§5.8): the custodian's share file (`custos-share/v2`, HPKE to the
 * custodian), the ceremony submission (`custos-unseal/v4`, HPKE to the
 * ceremony key, bound to the ceremony's kind and nonce) and the repository
 * share (`custos-repository-share/v1`, HPKE
 * to the node's repository key). All three carry the same payload — version,
 * init id, path, value — and bind the init id and the path into the HPKE
 * `info`, so an envelope relabelled with another path or another init does
 * not open; the payload repeats them and is checked against the labels. The
 * flat tree's `custos-share/v1` files (share-format.ts) are untouched.
 * Readers are zod schemas with exact field sets and lengths.
 */
import { z } from "zod";
import { b64u, concatBytes, hex, u8, utf8, zero } from "../crypto/bytes.js";
import { HpkeOpenError, hpkeOpen, hpkeSeal, x25519PublicKey } from "../crypto/hpke.js";
import { Secret } from "../crypto/secret.js";
import { INIT_ID_BYTES } from "../crypto/shamir.js";
import { type CeremonyKind, CeremonyKindSchema } from "./ceremony-kind.js";
import { CUSTODIAN_ID_RE, fingerprint } from "./custodian-key.js";
import { CEREMONY_NONCE_BYTES, ShareOpenError } from "./share-format.js";
import { PATH_RE } from "./tree.js";
import { MAX_LEAF_VALUE_BYTES, verifyLeaf } from "./tree-split.js";

export const TREE_SHARE_FILE_FORMAT = "custos-share/v2";
export const TREE_UNSEAL_FORMAT = "custos-unseal/v4";
export const REPOSITORY_SHARE_FORMAT = "custos-repository-share/v1";
export const TREE_PAYLOAD_VERSION = 0x02;

const LABEL = {
  share: utf8("custos/share/v2"),
  unseal: utf8("custos/unseal/v4"),
  repository: utf8("custos/repository-share/v1"),
};

const B64U = /^[A-Za-z0-9_-]+$/;
const b64 = (max: number) => z.string().max(max).regex(B64U, "must be base64url");
const Hex32 = z.string().regex(/^[0-9a-f]{32}$/, "must be 32 lowercase hex digits");
const Path = z.string().max(255).regex(PATH_RE, "must be a custody tree path (docs/FORMATS.md §5.5)");

export const TreeShareFileSchema = z.strictObject({
  format: z.literal(TREE_SHARE_FILE_FORMAT),
  initId: Hex32,
  custodian: z.string().regex(CUSTODIAN_ID_RE),
  path: Path,
  recipient: z.string().regex(/^sha256:[A-Za-z0-9_-]{43}$/),
  commitment: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  node: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  enc: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  ciphertext: b64(512),
});
export type TreeShareFile = z.infer<typeof TreeShareFileSchema>;

export const TreeUnsealSchema = z.strictObject({
  format: z.literal(TREE_UNSEAL_FORMAT),
  ceremony: CeremonyKindSchema,
  nonce: Hex32,
  path: Path,
  enc: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  ciphertext: b64(512),
});
export type TreeUnsealSubmission = z.infer<typeof TreeUnsealSchema>;

export const RepositoryShareSchema = z.strictObject({
  format: z.literal(REPOSITORY_SHARE_FORMAT),
  initId: Hex32,
  path: Path,
  node: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  enc: z.string().regex(/^[A-Za-z0-9_-]{43}$/),
  ciphertext: b64(512),
});
export type RepositoryShare = z.infer<typeof RepositoryShareSchema>;

/** What every tree envelope carries. */
export interface TreePayload {
  initId: Uint8Array;
  path: string;
  value: Secret;
}

/** payload = u8(0x02) ‖ initId(16) ‖ u8(len path) ‖ path ‖ u8(len v) ‖ v. Holds the share: zero it. */
function encodePayload(p: TreePayload): Uint8Array {
  const path = utf8(p.path, "path");
  const v = p.value.reveal();
  return concatBytes(u8(TREE_PAYLOAD_VERSION), p.initId, u8(path.length), path, u8(v.length), v);
}

function decodePayload(bytes: Uint8Array): TreePayload {
  const fail = (why: string): never => {
    throw new ShareOpenError("payload_mismatch", why);
  };
  if (bytes[0] !== TREE_PAYLOAD_VERSION) fail(`unsupported payload version ${bytes[0]}`);
  const initId = bytes.slice(1, 1 + INIT_ID_BYTES);
  let at = 1 + INIT_ID_BYTES;
  const pathLength = bytes[at] ?? 0;
  const path = Buffer.from(bytes.subarray(at + 1, at + 1 + pathLength)).toString("latin1");
  at += 1 + pathLength;
  const valueLength = bytes[at] ?? 0;
  if (valueLength === 0 || valueLength > MAX_LEAF_VALUE_BYTES || bytes.length !== at + 1 + valueLength) {
    fail("payload has the wrong length");
  }
  if (!PATH_RE.test(path)) fail("payload path is not a tree path");
  return { initId, path, value: Secret.of(bytes.slice(at + 1)) };
}

/** info = label ‖ initId(16) ‖ u8(len path) ‖ path (share file, repository share). */
function boundInfo(label: Uint8Array, initId: Uint8Array, path: string): Uint8Array {
  const p = utf8(path, "path");
  return concatBytes(label, initId, u8(p.length), p);
}

async function seal(publicKey: Uint8Array, payload: TreePayload, info: Uint8Array, aad: Uint8Array) {
  const plainBytes = encodePayload(payload);
  try {
    const { enc, ciphertext } = await hpkeSeal(publicKey, plainBytes, info, aad);
    return { enc: b64u.encode(enc), ciphertext: b64u.encode(ciphertext) };
  } finally {
    zero(plainBytes);
  }
}

/** Opens an envelope and checks that the payload says what the labels say. */
async function open(
  privateKey: Secret,
  env: { enc: string; ciphertext: string },
  info: Uint8Array,
  aad: Uint8Array,
  expect: { initId?: string; path: string },
): Promise<TreePayload> {
  let plainBytes: Uint8Array;
  try {
    plainBytes = await hpkeOpen(
      privateKey,
      b64u.decode(env.enc, "enc"),
      b64u.decode(env.ciphertext, "ciphertext"),
      info,
      aad,
    );
  } catch (err) {
    if (err instanceof HpkeOpenError) throw new ShareOpenError("undecryptable");
    throw err;
  }
  let payload: TreePayload;
  try {
    payload = decodePayload(plainBytes);
  } finally {
    zero(plainBytes);
  }
  const initOk = expect.initId === undefined || hex.encode(payload.initId) === expect.initId;
  if (!initOk || payload.path !== expect.path) {
    payload.value.dispose();
    throw new ShareOpenError("payload_mismatch", "the share inside names another path or init");
  }
  return payload;
}

export interface SealTreeShareArgs {
  initId: Uint8Array;
  path: string;
  custodian: string;
  recipientPublicKey: Uint8Array;
  value: Secret;
  commitment: Uint8Array;
  nodePublicKey: Uint8Array;
}

/** A custodian's `custos-share/v2` file. */
export async function sealTreeShareFile(a: SealTreeShareArgs): Promise<TreeShareFile> {
  if (!verifyLeaf(a.initId, a.path, a.value.reveal(), a.commitment)) {
    throw new RangeError(`commitment does not match the share at ${a.path}`);
  }
  const sealed = await seal(
    a.recipientPublicKey,
    { initId: a.initId, path: a.path, value: a.value },
    boundInfo(LABEL.share, a.initId, a.path),
    a.nodePublicKey,
  );
  return {
    format: TREE_SHARE_FILE_FORMAT,
    initId: hex.encode(a.initId),
    custodian: a.custodian,
    path: a.path,
    recipient: fingerprint(a.recipientPublicKey),
    commitment: b64u.encode(a.commitment),
    node: b64u.encode(a.nodePublicKey),
    ...sealed,
  };
}

/** Opens a custodian's v2 share file with their private key; checks labels and commitment. */
export async function openTreeShareFile(file: TreeShareFile, privateKey: Secret): Promise<TreePayload> {
  const f = TreeShareFileSchema.parse(file);
  const mine = fingerprint(x25519PublicKey(privateKey));
  if (mine !== f.recipient)
    throw new ShareOpenError("wrong_recipient", `file is for ${f.recipient}, this key is ${mine}`);
  const initId = hex.decode(f.initId, "initId");
  const payload = await open(
    privateKey,
    f,
    boundInfo(LABEL.share, initId, f.path),
    b64u.decode(f.node, "node"),
    f,
  );
  if (!verifyLeaf(initId, f.path, payload.value.reveal(), b64u.decode(f.commitment, "commitment"))) {
    payload.value.dispose();
    throw new ShareOpenError("payload_mismatch");
  }
  return payload;
}

/** info = "custos/unseal/v4" ‖ u8(len kind) ‖ kind ‖ nonce(16); aad = u8(len path) ‖ path. */
function unsealLabels(kind: CeremonyKind, nonce: Uint8Array, path: string) {
  const p = utf8(path, "path");
  const k = utf8(CeremonyKindSchema.parse(kind), "kind");
  return { info: concatBytes(LABEL.unseal, u8(k.length), k, nonce), aad: concatBytes(u8(p.length), p) };
}

/** A tree share sealed to a ceremony of kind `kind` (an unseal, a change's quorum or confirmation). */
export async function makeTreeUnsealSubmission(
  payload: TreePayload,
  kind: CeremonyKind,
  nonce: Uint8Array,
  ceremonyPublicKey: Uint8Array,
): Promise<TreeUnsealSubmission> {
  if (nonce.length !== CEREMONY_NONCE_BYTES) throw new RangeError("nonce must be 16 bytes");
  const { info, aad } = unsealLabels(kind, nonce, payload.path);
  const sealed = await seal(ceremonyPublicKey, payload, info, aad);
  return {
    format: TREE_UNSEAL_FORMAT,
    ceremony: kind,
    nonce: hex.encode(nonce),
    path: payload.path,
    ...sealed,
  };
}

/** Opens a submission with the ceremony key; the server's own kind and nonce are bound, not the claimed ones. */
export async function openTreeUnsealSubmission(
  sub: TreeUnsealSubmission,
  ceremonyPrivateKey: Secret,
  nonce: Uint8Array,
  kind: CeremonyKind,
): Promise<TreePayload> {
  const s = TreeUnsealSchema.parse(sub);
  if (s.ceremony !== kind) throw new ShareOpenError("wrong_kind");
  if (s.nonce !== hex.encode(nonce)) throw new ShareOpenError("wrong_ceremony");
  const { info, aad } = unsealLabels(kind, nonce, s.path);
  return open(ceremonyPrivateKey, s, info, aad, { path: s.path });
}

/** A repository's copy: HPKE to the node's repository key, bound to init id, path and node identity. */
export async function sealRepositoryShare(
  payload: TreePayload,
  repositoryPublicKey: Uint8Array,
  nodePublicKey: Uint8Array,
): Promise<RepositoryShare> {
  const sealed = await seal(
    repositoryPublicKey,
    payload,
    boundInfo(LABEL.repository, payload.initId, payload.path),
    nodePublicKey,
  );
  return {
    format: REPOSITORY_SHARE_FORMAT,
    initId: hex.encode(payload.initId),
    path: payload.path,
    node: b64u.encode(nodePublicKey),
    ...sealed,
  };
}

/** Opens what a repository returned; anything else than the expected share throws ShareOpenError. */
export async function openRepositoryShare(
  bytes: Uint8Array,
  repositoryPrivateKey: Secret,
  nodePublicKey: Uint8Array,
  expect: { initId: string; path: string },
): Promise<TreePayload> {
  let parsed: RepositoryShare;
  try {
    parsed = RepositoryShareSchema.parse(JSON.parse(Buffer.from(bytes).toString("utf8")));
  } catch {
    throw new ShareOpenError("payload_mismatch", `not a ${REPOSITORY_SHARE_FORMAT} document`);
  }
  if (parsed.initId !== expect.initId || parsed.path !== expect.path) {
    throw new ShareOpenError("payload_mismatch", "the share is labelled for another path or init");
  }
  const initId = hex.decode(parsed.initId, "initId");
  return open(
    repositoryPrivateKey,
    parsed,
    boundInfo(LABEL.repository, initId, parsed.path),
    nodePublicKey,
    expect,
  );
}
