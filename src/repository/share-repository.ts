/**
 * The seam between custody and the places that keep shares: a repository
 * stores opaque bytes under a key and gives them back. It never sees a share
 * in the clear — what it stores is a `custos-repository-share/v1` document,
 * HPKE-sealed to the node's repository key (docs/FORMATS.md §5.8) — so a
 * repository needs no trust for confidentiality, only for availability, and
 * the node checks every answer against its commitment. Two methods, like
 * age's Recipient/Identity: directories, PostgreSQL tables and remote share
 * nodes plug in through them.
 */

export interface ShareRepository {
  /** Stores `share` under `key`, durably, replacing any earlier value. */
  put(key: string, share: Uint8Array): Promise<void>;
  /** The bytes stored under `key`, or null when there are none. */
  get(key: string): Promise<Uint8Array | null>;
  /** Releases connections; the repository is not used afterwards. */
  close?(): Promise<void>;
}

/** Keys are `<init id>/<leaf path>`: hex, path segments, one kind:name. */
export const SHARE_KEY_RE =
  /^[0-9a-f]{32}\/root(\/[1-9][0-9]?)*\/(custodian|repository|tpm):[a-z0-9][a-z0-9._-]{0,63}$/;
export const MAX_SHARE_BYTES = 4096;

/** The key a leaf's share is stored under. */
export function shareKey(initId: string, path: string): string {
  const key = `${initId}/${path}`;
  assertShareKey(key);
  return key;
}

export function assertShareKey(key: unknown): asserts key is string {
  if (typeof key !== "string") throw new TypeError("key must be a string");
  if (!SHARE_KEY_RE.test(key)) throw new RangeError("key must be '<init id>/<custody tree leaf path>'");
}

export function assertShareBytes(share: unknown): asserts share is Uint8Array {
  if (!(share instanceof Uint8Array)) throw new TypeError("share must be a Uint8Array");
  if (share.length === 0 || share.length > MAX_SHARE_BYTES) {
    throw new RangeError(`share must be 1 to ${MAX_SHARE_BYTES} bytes, got ${share.length}`);
  }
}
