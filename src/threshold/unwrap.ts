/**
 * Collecting partials for an unwrap (docs/FORMATS.md §11.5): S = x·R from a
 * quorum of every trust set, never x. Per set it asks only as many share nodes
 * as the threshold (those that failed least recently first) and asks more only
 * when some are unreachable or give a partial whose DLEQ proof fails: on a
 * two-core machine the extra partials would cost CPU the answer is waiting
 * for. Proofs are checked in one batch; only a failing batch is checked proof
 * by proof, to name the culprit. The good partials of all sets are combined by
 * Lagrange interpolation in the exponent in one multi-scalar multiplication.
 * Errors name every share node that was unreachable or bad.
 */
import { b64u } from "../crypto/bytes.js";
import type { Member, ThresholdKey, TrustSet } from "./descriptor.js";
import { encodePoint } from "./descriptor.js";
import { batchVerifyDleq, type DleqProof, type DleqStatement, decodeDleq, verifyDleq } from "./dleq.js";
import { lagrangeAtZero, type Point, pointFromBytes, sumProducts } from "./group.js";
import { partialContext } from "./partial.js";
import type { RequestSigner } from "./request-auth.js";
import { callShareNode, ShareNodeCallError, type ShareNodeRef } from "./share-node-client.js";
import { PartialResponse } from "./wire.js";

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
  /** Where to reach a member (its configured URL). */
  ref: (m: Member) => ShareNodeRef;
  /** Called with the names of share nodes that gave partials failing their proofs. */
  onBadPartial?: (nodes: string[]) => void;
}

export class PartialCollector {
  /** When each share node last failed (ms), to ask healthy ones first. */
  #lastFailure = new Map<string, number>();

  constructor(private readonly options: CollectorOptions) {}

  /** S = x·R from a quorum of every trust set. Throws ThresholdUnavailableError naming the nodes that failed. */
  async sharedPoint(key: ThresholdKey, r: Point): Promise<Point> {
    const point = encodePoint(r);
    const unreachable: string[] = [];
    const bad: string[] = [];
    const perSet = await Promise.all(
      key.sets.map((set) => this.#quorum(key, set, r, point, unreachable, bad)),
    );
    if (bad.length) this.options.onBadPartial?.(bad);
    const missing = perSet.flatMap((p, i) => (p === null ? [key.sets[i]!.spec] : []));
    if (missing.length) {
      const sets = missing
        .map((s) => `'${s.name}' (${s.threshold} of ${s.members.map((m) => m.node).join(", ")})`)
        .join(", ");
      const parts = [
        unreachable.length ? `unreachable: ${unreachable.join(", ")}` : "",
        bad.length ? `partial failed its proof: ${bad.join(", ")}` : "",
      ].filter(Boolean);
      throw new ThresholdUnavailableError(
        unreachable,
        bad,
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
    unreachable: string[],
    bad: string[],
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
          (a instanceof ShareNodeCallError && a.kind === "unreachable" ? unreachable : bad).push(m.node);
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
          bad.push(c.m.node);
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
        { shareId: set.shareId, epoch: set.epoch, point, key: key.keyName, version: key.keyVersion },
        PartialResponse,
        this.options.timeoutMs,
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
