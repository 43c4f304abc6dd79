/**
 * The cryptographic half of the init ceremony, kept apart from the seal's
 * state machine: check the custodians, make the root key, split it k-of-N
 * with commitments and a key check value, encrypt each share to its
 * custodian, and seal the audit key under the new root. Nothing here is
 * stored; the caller makes the result durable and only then uses it, and
 * disposes of it if that fails (`commitInit` makes it durable).
 */
import { ed25519 } from "@noble/curves/ed25519.js";
import type { Auditor } from "../audit/auditor.js";
import { durably } from "../audit/auditor.js";
import { AUDIT_SIGNING_KEY, AUDIT_SIGNING_KEY_CONTEXT } from "../audit/merkle-log.js";
import { b64u, hex, randomBytes, zero } from "../crypto/bytes.js";
import { ROOT_KEY_NAME, wrap } from "../crypto/envelope.js";
import { isUsableX25519PublicKey } from "../crypto/hpke.js";
import { SoftwareKeyHandle } from "../crypto/key-handle.js";
import { Secret } from "../crypto/secret.js";
import { keyCheckValue, MAX_SHARES, MIN_THRESHOLD, splitRootKey } from "../crypto/shamir.js";
import { hashToken, newToken } from "../crypto/token.js";
import { CustosError } from "../errors.js";
import type { SealConfig, Store } from "../store/store.js";
import { CUSTODIAN_ID_RE } from "./custodian-key.js";
import { type ShareFile, sealShareFile } from "./share-format.js";

export const AUDIT_KEY_CONTEXT = { "custos.record": "audit-key" };

export interface CustodianInput {
  id: string;
  /** X25519 public key, b64u. */
  publicKey: string;
}

export interface NewCustody {
  config: SealConfig;
  shareFiles: ShareFile[];
  /** Owns the new root key (used to seal the system secrets). */
  root: SoftwareKeyHandle;
  /** A copy of the root key's bytes, for the node's protection level to take over. */
  rootKey: Secret;
  auditKey: Secret;
  /** System secrets sealed under the root key (docs/FORMATS.md §4), by name: the audit HMAC and signing keys. */
  sealedSecrets: Record<string, Uint8Array>;
}

export async function makeCustody(
  threshold: number,
  custodians: CustodianInput[],
  nodePublicKey: Uint8Array,
): Promise<NewCustody> {
  const publicKeys = validateCustodians(threshold, custodians);
  const rk = Secret.random(32);
  const initIdBytes = randomBytes(16);
  const initId = hex.encode(initIdBytes);
  const ids = custodians.map((c) => c.id);
  const split = await splitRootKey(rk, ids, threshold, initIdBytes);
  const root = new SoftwareKeyHandle(rk);
  const auditKey = Secret.random(32);
  try {
    const config: SealConfig = {
      initId,
      threshold,
      shares: custodians.length,
      custodians: custodians.map((c, i) => ({
        id: c.id,
        index: i + 1,
        publicKey: c.publicKey,
        commitment: b64u.encode(split.commitments[i]!),
      })),
      kcv: b64u.encode(keyCheckValue(rk)),
      rootGeneration: 1,
      createdAt: new Date().toISOString(),
    };
    const shareFiles: ShareFile[] = [];
    for (const s of split.shares) {
      shareFiles.push(
        await sealShareFile({
          initId: initIdBytes,
          index: s.index,
          holder: s.holder,
          threshold,
          shares: custodians.length,
          recipientPublicKey: publicKeys[s.index - 1]!,
          share: s.share,
          commitment: split.commitments[s.index - 1]!,
          nodePublicKey,
        }),
      );
    }
    const sealedSecrets = await sealSystemSecrets(root, auditKey);
    return { config, shareFiles, root, rootKey: Secret.of(rk.reveal().slice()), auditKey, sealedSecrets };
  } catch (err) {
    root.dispose();
    auditKey.dispose();
    throw err;
  } finally {
    for (const s of split.shares) s.share.dispose();
  }
}

/** The system secrets sealed under a new root key (docs/FORMATS.md §4): the audit HMAC key and a fresh audit signing key. */
export async function sealSystemSecrets(
  root: SoftwareKeyHandle,
  auditKey: Secret,
): Promise<Record<string, Uint8Array>> {
  const signingKey = ed25519.utils.randomSecretKey();
  try {
    return {
      "audit-key": await wrap(root, ROOT_KEY_NAME, 1, auditKey.reveal(), AUDIT_KEY_CONTEXT),
      [AUDIT_SIGNING_KEY]: await wrap(root, ROOT_KEY_NAME, 1, signingKey, AUDIT_SIGNING_KEY_CONTEXT),
    };
  } finally {
    zero(signingKey);
  }
}

function validateCustodians(threshold: number, custodians: CustodianInput[]): Uint8Array[] {
  const n = custodians.length;
  if (!Number.isInteger(threshold) || threshold < MIN_THRESHOLD || threshold > n || n > MAX_SHARES) {
    throw new CustosError(
      400,
      "invalid_threshold",
      `threshold must satisfy ${MIN_THRESHOLD} ≤ threshold ≤ custodians ≤ ${MAX_SHARES} (got ${threshold} of ${n})`,
    );
  }
  const ids = new Set<string>();
  const keys = new Set<string>();
  return custodians.map((c) => {
    if (!CUSTODIAN_ID_RE.test(c.id)) {
      throw new CustosError(400, "invalid_custodian", `custodian id '${c.id}' must match ${CUSTODIAN_ID_RE}`);
    }
    if (ids.has(c.id)) throw new CustosError(400, "invalid_custodian", `custodian '${c.id}' is listed twice`);
    if (keys.has(c.publicKey)) {
      throw new CustosError(400, "invalid_custodian", `custodian '${c.id}' shares a public key with another`);
    }
    ids.add(c.id);
    keys.add(c.publicKey);
    let key: Uint8Array;
    try {
      key = b64u.decode(c.publicKey, "publicKey");
    } catch {
      key = new Uint8Array(0);
    }
    if (key.length !== 32 || !isUsableX25519PublicKey(key)) {
      throw new CustosError(
        400,
        "invalid_custodian",
        `public key of custodian '${c.id}' must be a valid X25519 public key (32 bytes of base64url)`,
      );
    }
    return key;
  });
}

/**
 * Makes an init durable — seal configuration, sealed system secrets, a new
 * root token, the audit event, in one store transaction — and returns the
 * root token. A store that fails with "outcome unknown" (its writer died
 * around the commit) may in fact have committed: then the shares and root
 * token about to be lost are the only ones that open this node, so the store
 * is asked which init it holds, and ours is answered as a success.
 */
export async function commitInit(
  store: Store,
  auditor: Auditor,
  made: Pick<NewCustody, "config" | "sealedSecrets">,
  reason: string,
  requestId?: string,
): Promise<string> {
  const rootToken = newToken();
  const write = () =>
    store.initialize(
      made.config,
      made.sealedSecrets,
      {
        hash: hashToken(rootToken),
        principal: "root",
        roles: ["root"],
        createdBy: "init",
        createdAt: new Date().toISOString(),
        expiresAt: null,
      },
      auditor.event({ principal: "anonymous", operation: "sys.init", decision: "allow", reason, requestId }),
    );
  try {
    await durably(write, "custos is already initialised");
  } catch (err) {
    if (!(err instanceof CustosError) || err.code !== "audit_unavailable") throw err;
    const stored = await store.getSealConfig().catch(() => null);
    if (stored?.initId !== made.config.initId) throw err;
  }
  return rootToken;
}
