/**
 * Re-sealing everything the root key protects under a new root key, for a
 * root rotation (docs/FORMATS.md §5.9): every key version's material and
 * every system secret is opened with the old root and sealed again with the
 * new one under the next root generation, with the same context, so each
 * record stays bound to its row. Nothing is written here: the result goes to
 * the store's one-transaction switch, which takes it only if every record it
 * replaces is still byte for byte what was read. A sealed record whose
 * context this module does not know stops the rotation — a record left
 * under the old root would be lost with it.
 */
import { AUDIT_SIGNING_KEY, AUDIT_SIGNING_KEY_CONTEXT } from "../audit/merkle-log.js";
import { zero } from "../crypto/bytes.js";
import { ROOT_KEY_NAME, unwrap, wrap } from "../crypto/envelope.js";
import type { KeyHandle } from "../crypto/key-handle.js";
import { CustosError } from "../errors.js";
import { materialContext } from "../keys/keyring.js";
import type { CustodySwitch, SealedRecord, Store } from "../store/store.js";
import { AUDIT_KEY_CONTEXT } from "./init-ceremony.js";

/** The context of each system secret (docs/FORMATS.md §4). */
const SYS_SECRET_CONTEXTS: Readonly<Record<string, Record<string, string>>> = {
  "audit-key": AUDIT_KEY_CONTEXT,
  [AUDIT_SIGNING_KEY]: AUDIT_SIGNING_KEY_CONTEXT,
};

function contextOf(r: SealedRecord): Record<string, string> {
  if (r.kind === "key-material") return materialContext(r.name, r.version);
  const context = SYS_SECRET_CONTEXTS[r.name];
  if (context === undefined) {
    throw new CustosError(
      409,
      "unknown_sealed_record",
      `system secret '${r.name}' is sealed under the root but this version cannot re-seal it; nothing was rotated`,
    );
  }
  return context;
}

/** Every sealed record, re-sealed under `newRoot` as generation `generation`. */
export async function resealAll(
  store: Store,
  oldRoot: KeyHandle,
  newRoot: KeyHandle,
  generation: number,
): Promise<CustodySwitch["resealed"]> {
  const out: CustodySwitch["resealed"] = [];
  for (const r of await store.getSealedRecords()) {
    const context = contextOf(r);
    const plain = await unwrap(oldRoot, r.sealed, context);
    try {
      const sealed = await wrap(newRoot, ROOT_KEY_NAME, generation, plain, context);
      out.push({ kind: r.kind, name: r.name, version: r.version, sealed, from: r.sealed });
    } finally {
      zero(plain);
    }
  }
  return out;
}
