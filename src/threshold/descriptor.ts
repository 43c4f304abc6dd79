/**
 * A threshold key version as the custos node records it (docs/FORMATS.md
 * §11.2): the public key, and for each trust set its threshold, its share
 * id, its refresh epoch, its members (share node name, URL, identity and HPKE
 * keys, index) and the aggregated Feldman commitments C_0..C_{t−1} from which
 * every member's verification share Y_j = Σ j^l·C_l follows. It holds no
 * secret, but it is stored sealed under the root key like any key material:
 * whoever could swap the public key could read everything wrapped afterwards,
 * and whoever could swap a verification share could pass off wrong partials.
 * `ThresholdKey` is its parsed form, with the points decoded once and the
 * verification shares computed once per load.
 */
import { z } from "zod";
import { b64u, utf8 } from "../crypto/bytes.js";
import { evaluateCommitments } from "./feldman.js";
import { type Point, pointFromBytes, pointToBytes } from "./group.js";
import { Epoch, Index, NodeName, PointB64, ShareId } from "./wire.js";

export const DESCRIPTOR_FORMAT = "custos-threshold-key/v1";

export const Member = z
  .object({
    index: Index,
    node: NodeName,
    url: z.string().url().max(512),
    identityKey: PointB64,
    hpkeKey: PointB64,
  })
  .strict();
export type Member = z.infer<typeof Member>;

export const TrustSet = z
  .object({
    name: NodeName,
    threshold: Index,
    shareId: ShareId,
    epoch: Epoch,
    members: z.array(Member).min(1).max(32),
    commitments: z.array(PointB64).min(1).max(32),
  })
  .strict();
export type TrustSet = z.infer<typeof TrustSet>;

export const Descriptor = z
  .object({
    format: z.literal(DESCRIPTOR_FORMAT),
    publicKey: PointB64,
    sets: z.array(TrustSet).min(1).max(8),
  })
  .strict();
export type Descriptor = z.infer<typeof Descriptor>;

/** How a threshold key is shared: the sets and their thresholds, by share node name. */
export interface SetSpec {
  name: string;
  threshold: number;
  nodes: string[];
}

export interface LoadedSet {
  spec: TrustSet;
  /** Verification share of each member, by index. */
  verification: Map<number, Point>;
}

export class ThresholdKey {
  readonly publicKey: Point;
  readonly sets: LoadedSet[];

  constructor(
    readonly keyName: string,
    readonly keyVersion: number,
    readonly descriptor: Descriptor,
  ) {
    const parsed = Descriptor.parse(descriptor);
    this.publicKey = pointFromBytes(b64u.decode(parsed.publicKey, "publicKey"), "publicKey");
    this.sets = parsed.sets.map((set) => {
      if (set.commitments.length !== set.threshold)
        throw new RangeError(`set ${set.name}: one commitment per coefficient`);
      const commitments = set.commitments.map((c, l) => pointFromBytes(b64u.decode(c, `C_${l}`), `C_${l}`));
      return {
        spec: set,
        verification: new Map(set.members.map((m) => [m.index, evaluateCommitments(commitments, m.index)])),
      };
    });
    const sum = this.sets.reduce(
      (acc, s) => acc.add(pointFromBytes(b64u.decode(s.spec.commitments[0]!, "C_0"), "C_0")),
      this.publicKey.subtract(this.publicKey),
    );
    if (!sum.equals(this.publicKey)) throw new RangeError("the public key is not the sum of the sets' C_0");
  }

  /** What a rotation or a new key on the same share nodes needs. */
  specs(): SetSpec[] {
    return this.descriptor.sets.map((s) => ({
      name: s.name,
      threshold: s.threshold,
      nodes: s.members.map((m) => m.node),
    }));
  }

  toBytes(): Uint8Array {
    return utf8(JSON.stringify(this.descriptor));
  }

  static fromBytes(keyName: string, keyVersion: number, bytes: Uint8Array): ThresholdKey {
    const json: unknown = JSON.parse(Buffer.from(bytes).toString("utf8"));
    return new ThresholdKey(keyName, keyVersion, Descriptor.parse(json));
  }
}

export function encodePoint(p: Point): string {
  return b64u.encode(pointToBytes(p));
}
