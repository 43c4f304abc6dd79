/**
 * Collecting partials for an unwrap (docs/FORMATS.md §11.5): S = x·R from a
 * quorum of every trust set, never x. The share nodes never see R: each
 * unwrap draws a fresh secret ρ and asks for partials on R' = ρ·R, a point
 * uniformly distributed whatever R is, so a share node (or anyone reading the
 * link) learns nothing about which ciphertext is opened, and the partials
 * x_j·R' combine to S' = ρ·S, which is useless without ρ; S = ρ⁻¹·S' is
 * computed here. That costs one multiplication and one inversion per unwrap
 * on top of the unblinding multiplication, none per share node. Per set it
 * asks only as many share nodes as the threshold (those that failed least
 * recently first) and asks more only when some are unreachable or give a
 * partial whose DLEQ proof (over R') fails: on a two-core machine the extra
 * partials would cost CPU the answer is waiting for. Proofs are checked in
 * one batch; only a failing batch is checked proof by proof, to name the
 * culprit. The good partials of all sets are combined by Lagrange
 * interpolation in the exponent in one multi-scalar multiplication. Errors
 * name every share node that was unreachable, refused or bad.
 */
import { b64u } from "../crypto/bytes.js";
import type { Member, ThresholdKey, TrustSet } from "./descriptor.js";
import { encodePoint } from "./descriptor.js";
import { batchVerifyDleq, type DleqProof, type DleqStatement, decodeDleq, verifyDleq } from "./dleq.js";
import { inv, lagrangeAtZero, type Point, pointFromBytes, randomScalar, sumProducts } from "./group.js";
import { partialContext } from "./partial.js";
import type { RequestSigner } from "./request-auth.js";
import { callShareNode, ShareNodeCallError, type ShareNodeRef } from "./share-node-client.js";
import type { ShareNodeLink } from "./share-node-link.js";
import { PARTIAL_REQUEST_FORMAT, PartialResponse } from "./wire.js";

/** Not enough share nodes answered well; names them, per trust set. */
export class ThresholdUnavailableError extends Error {
  constructor(
    readonly unreachable: string[],
    readonly badPartials: string[],
    message: string,
  ) {
    super(message);
    this.name = "ThresholdUnavailableError";
  }
}

export interface CollectorOptions {
  signer: RequestSigner;
  timeoutMs: number;
  /** How share nodes are reached (TLS, which URLs are allowed). */
  link: ShareNodeLink;
  /** Where to reach a member (its configured URL). */
  ref: (m: Member) => ShareNodeRef;
  /** Called with the names of share nodes that gave partials failing their proofs. */
  onBadPartial?: (nodes: string[]) => void;
}

export class PartialCollector {
  /** When each share node last failed (ms), to ask healthy ones first. */
  #lastFailure = new Map<string, number>();

  constructor(private readonly options: CollectorOptions) {}

  /** S = x·R from a quorum of every trust set, asked on a blinded point. Throws ThresholdUnavailableError naming the nodes that failed. */
  async sharedPoint(key: ThresholdKey, r: Point): Promise<Point> {
    // ρ: 64 CSPRNG bytes reduced mod ℓ, non-zero (the bytes are wiped by
    // randomScalar), one per unwrap. The two multiplications are @noble's
    // constant-time ones; the inversion is bigint arithmetic, like all scalar
    // arithmetic here (README, Security considerations). Bigints cannot be
    // wiped, so "zeroing" ρ only drops the references early.
    let rho = randomScalar();
    const blinded = r.multiply(rho);
    let unblind = 0n;
    try {
      const combined = await this.#combine(key, blinded);
      unblind = inv(rho);
      return combined.multiply(unblind);
    } finally {
      rho = 0n;
      unblind = 0n;
    }
  }

  /** S' = x·R' from the partials of a quorum of every set on the blinded point R'. */
  async #combine(key: ThresholdKey, r: Point): Promise<Point> {
    const point = encodePoint(r);
    const unreachable: string[] = [];
    const bad: string[] = [];
    const refused: { node: string; why: string }[] = [];
    const perSet = await Promise.all(
      key.sets.map((set) => this.#quorum(key, set, r, point, { unreachable, bad, refused })),
    );
    const badNodes = [...bad, ...refused.map((f) => f.node)];
    if (badNodes.length) this.options.onBadPartial?.(badNodes);
    const missing = perSet.flatMap((p, i) => (p === null ? [key.sets[i]!.spec] : []));
    if (missing.length) {
      const sets = missing
        .map((s) => `'${s.name}' (${s.threshold} of ${s.members.map((m) => m.node).join(", ")})`)
        .join(", ");
      const parts = [
        unreachable.length ? `unreachable: ${unreachable.join(", ")}` : "",
        bad.length ? `partial failed its proof: ${bad.join(", ")}` : "",
        refused.length
          ? `refused or answered wrongly: ${refused.map((f) => `${f.node} (${f.why})`).join("; ")}`
          : "",
      ].filter(Boolean);
      throw new ThresholdUnavailableError(
        unreachable,
        badNodes,
        `not enough share nodes for trust set ${sets}; ${parts.join("; ")}`,
      );
    }
    const points: Point[] = [];
    const scalars: bigint[] = [];
    for (const good of perSet as { index: number; partial: Point }[][]) {
      const indices = good.map((g) => g.index);
      for (const g of good) {
        points.push(g.partial);
        scalars.push(lagrangeAtZero(g.index, indices));
      }
    }
    return sumProducts(points, scalars);
  }

  async #quorum(
    key: ThresholdKey,
    set: ThresholdKey["sets"][number],
    r: Point,
    point: string,
    failed: { unreachable: string[]; bad: string[]; refused: { node: string; why: string }[] },
  ): Promise<{ index: number; partial: Point }[] | null> {
    const t = set.spec.threshold;
    const order = [...set.spec.members].sort(
      (a, b) =>
        (this.#lastFailure.get(a.node) ?? 0) - (this.#lastFailure.get(b.node) ?? 0) || a.index - b.index,
    );
    const good: { index: number; partial: Point }[] = [];
    let next = 0;
    while (good.length < t && next < order.length) {
      const batch = order.slice(next, next + (t - good.length));
      next += batch.length;
      const answers = await Promise.all(batch.map((m) => this.#partial(key, set.spec, m, point)));
      const candidates: { m: Member; s: DleqStatement; proof: DleqProof; partial: Point }[] = [];
      answers.forEach((a, i) => {
        const m = batch[i]!;
        if (a instanceof Error) {
          this.#lastFailure.set(m.node, Date.now());
          if (a instanceof ShareNodeCallError && a.kind === "unreachable") failed.unreachable.push(m.node);
          else {
            const prefix = `share node ${m.node}: `;
            const why = a.message.startsWith(prefix) ? a.message.slice(prefix.length) : a.message;
            failed.refused.push({ node: m.node, why });
          }
          return;
        }
        const y = set.verification.get(m.index)!;
        candidates.push({
          m,
          proof: a.proof,
          partial: a.partial,
          s: { context: partialContext(set.spec.shareId, set.spec.epoch, m.index), y, r, p: a.partial },
        });
      });
      const allGood = batchVerifyDleq(candidates);
      for (const c of candidates) {
        if (allGood || verifyDleq(c.s, c.proof)) good.push({ index: c.m.index, partial: c.partial });
        else {
          this.#lastFailure.set(c.m.node, Date.now());
          failed.bad.push(c.m.node);
        }
      }
    }
    return good.length >= t ? good.slice(0, t) : null;
  }

  async #partial(
    key: ThresholdKey,
    set: TrustSet,
    m: Member,
    point: string,
  ): Promise<{ partial: Point; proof: DleqProof } | Error> {
    try {
      const a = await callShareNode(
        this.options.signer,
        this.options.ref(m),
        "/v1/threshold/partial",
        {
          format: PARTIAL_REQUEST_FORMAT,
          shareId: set.shareId,
          epoch: set.epoch,
          point,
          key: key.keyName,
          version: key.keyVersion,
        },
        PartialResponse,
        this.options.timeoutMs,
        this.options.link,
      );
      if (a.index !== m.index) return new Error(`answered as index ${a.index}`);
      return {
        partial: pointFromBytes(b64u.decode(a.partial, "partial"), "partial"),
        proof: decodeDleq(b64u.decode(a.proof, "proof"), "proof"),
      };
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }
}
