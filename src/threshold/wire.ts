/**
 * The messages between a custos node and its share nodes (docs/FORMATS.md
 * §11.4-§11.6), as zod schemas both sides use: the share node validates every
 * request body with them, the custos node validates every answer, so neither
 * trusts the other's JSON shape. Binary values are unpadded base64url of
 * fixed length (points, scalars, proofs) or bounded length (HPKE ciphertexts);
 * identifiers are lowercase hex of fixed length.
 */
import { z } from "zod";

const b64uOf = (bytes: number) =>
  z
    .string()
    .length(Math.ceil((bytes * 4) / 3))
    .regex(/^[A-Za-z0-9_-]+$/, "must be unpadded base64url");
export const PointB64 = b64uOf(32);
export const ScalarB64 = b64uOf(32);
export const ProofB64 = b64uOf(96);
export const SigB64 = b64uOf(64);
export const ShareId = z.string().regex(/^[0-9a-f]{32}$/, "must be 32 lowercase hex digits");
export const NodeName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "must match ^[a-z0-9][a-z0-9._-]{0,63}$");
export const Index = z.number().int().min(1).max(32);
export const Epoch = z.number().int().min(1).max(0xffff_ffff);
const KeyName = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,127}$/);

export const Participant = z
  .object({ index: Index, node: NodeName, identityKey: PointB64, hpkeKey: PointB64 })
  .strict();

/** What a DKG or refresh round is about; signed into every dealing and bound into every HPKE `info`. */
export const Round = z
  .object({
    shareId: ShareId,
    key: KeyName,
    version: z.number().int().min(1).max(0xffff_ffff),
    set: NodeName,
    /** The epoch the round produces (1 for a new key, current + 1 for a refresh). */
    epoch: Epoch,
    threshold: Index,
    participants: z.array(Participant).min(1).max(32),
    kind: z.enum(["dkg", "refresh"]),
  })
  .strict();
export type Round = z.infer<typeof Round>;

export const DealRequest = z.object({ round: Round, self: Index }).strict();

export const EncryptedShare = z
  .object({
    to: Index,
    enc: PointB64,
    ciphertext: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[A-Za-z0-9_-]+$/),
  })
  .strict();

export const Dealing = z
  .object({
    from: Index,
    commitments: z.array(PointB64).max(32),
    shares: z.array(EncryptedShare).min(1).max(32),
    /** Ed25519 by the dealer's identity key over the round and the dealing (§11.3). */
    signature: SigB64,
  })
  .strict();
export type Dealing = z.infer<typeof Dealing>;

export const CompleteRequest = z
  .object({ round: Round, self: Index, dealings: z.array(Dealing).min(1).max(32) })
  .strict();

export const CompleteResponse = z
  .object({
    /** The recipient's new verification share Y_j = x_j·G. */
    verificationShare: PointB64,
  })
  .strict();

export const CommitRequest = z.object({ shareId: ShareId, epoch: Epoch }).strict();
export const CommitResponse = CommitRequest;

/**
 * Version 2 of the partial exchange (§11.5): `point` is the blinded R' = ρ·R,
 * never the ciphertext's R. Version 1 (no `format` field, unblinded) is
 * refused by both sides with an error that names it.
 */
export const PARTIAL_REQUEST_FORMAT = "custos-partial-request/v2";
export const PARTIAL_FORMAT = "custos-partial/v2";
/** What `GET /v1/threshold/info` announces; v1 share nodes answered unblinded partials. */
export const SHARE_NODE_FORMAT = "custos-share-node/v2";

export const PartialRequest = z
  .object({
    format: z.literal(PARTIAL_REQUEST_FORMAT),
    shareId: ShareId,
    epoch: Epoch,
    /** b64u(R'), the blinded point. */
    point: PointB64,
    key: KeyName,
    version: z.number().int().min(1),
  })
  .strict();
export type PartialRequest = z.infer<typeof PartialRequest>;

export const PartialResponse = z
  .object({ format: z.literal(PARTIAL_FORMAT), index: Index, partial: PointB64, proof: ProofB64 })
  .strict();

export const NodeInfo = z
  .object({ format: z.literal(SHARE_NODE_FORMAT), identityKey: PointB64, hpkeKey: PointB64 })
  .strict();
export type NodeInfo = z.infer<typeof NodeInfo>;

export const ErrorBody = z.object({ error: z.string(), message: z.string() }).passthrough();
