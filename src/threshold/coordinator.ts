/**
 * The custos node's side of threshold keys (docs/FORMATS.md §11): it runs
 * the DKG and refresh rounds over HTTP without ever seeing a share in the
 * clear (dealings carry HPKE ciphertexts addressed to each share node), and it
 * computes S = x·R for an unwrap from partials of a quorum of every trust set.
 * For an unwrap it asks, per set, only as many share nodes as the threshold
 * (those that failed least recently first) and asks more only when some are
 * unreachable or give a partial whose DLEQ proof fails: on a two-core machine
 * the extra partials would cost CPU the answer is waiting for. Proofs are
 * checked in one batch; only a failing batch is checked proof by proof, to
 * name the culprit. Errors name every share node that was unreachable or bad.
 */
import { b64u, hex, randomBytes } from "../crypto/bytes.js";
import {
  DESCRIPTOR_FORMAT,
  type Descriptor,
  encodePoint,
  type Member,
  type SetSpec,
  ThresholdKey,
  type TrustSet,
} from "./descriptor.js";
import { batchVerifyDleq, type DleqProof, type DleqStatement, decodeDleq, verifyDleq } from "./dleq.js";
import { addCommitments, evaluateCommitments } from "./feldman.js";
import { lagrangeAtZero, type Point, pointFromBytes, sumProducts } from "./group.js";
import { partialContext } from "./partial.js";
import type { RequestSigner } from "./request-auth.js";
import {
  callShareNode,
  DEFAULT_TIMEOUT_MS,
  fetchInfo,
  ShareNodeCallError,
  type ShareNodeRef,
} from "./share-node-client.js";
import {
  CommitResponse,
  CompleteResponse,
  Dealing,
  type Dealing as DealingT,
  PartialResponse,
  type Round,
} from "./wire.js";

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

/** A DKG or refresh round failed; nothing was changed that is in use. */
export class ThresholdRoundError extends Error {
  constructor(
    readonly nodes: string[],
    message: string,
  ) {
    super(message);
    this.name = "ThresholdRoundError";
  }
}

export interface CoordinatorOptions {
  signer: RequestSigner;
  /** Share nodes this custos node may use, by name. */
  nodes: ReadonlyMap<string, string>;
  timeoutMs?: number;
  /** Called with the names of share nodes that gave partials failing their proofs. */
  onBadPartial?: (nodes: string[]) => void;
}

export class ThresholdCoordinator {
  readonly #timeout: number;
  /** When each share node last failed (ms), to ask healthy ones first. */
  #lastFailure = new Map<string, number>();

  constructor(private readonly options: CoordinatorOptions) {
    this.#timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Where to reach a member: its configured URL (share nodes may move), else the one recorded at generation. */
  #ref(m: Member): ShareNodeRef {
    return { node: m.node, url: this.options.nodes.get(m.node) ?? m.url, identityKey: m.identityKey };
  }

  get nodeNames(): string[] {
    return [...this.options.nodes.keys()];
  }

  /** Checks a set specification against the configured share nodes; the message says what to fix. */
  checkSpecs(specs: readonly SetSpec[]): void {
    if (specs.length < 1 || specs.length > 8) throw new RangeError("give 1 to 8 trust sets");
    const names = new Set<string>();
    for (const s of specs) {
      if (names.has(s.name)) throw new RangeError(`trust set '${s.name}' is given twice`);
      names.add(s.name);
      if (new Set(s.nodes).size !== s.nodes.length)
        throw new RangeError(`trust set '${s.name}' names a share node twice`);
      for (const n of s.nodes) {
        if (!this.options.nodes.has(n)) {
          throw new RangeError(
            `share node '${n}' is not configured on this server (configured: ${this.nodeNames.join(", ") || "none"}; start it with --share-node NAME=URL)`,
          );
        }
      }
      if (
        !Number.isInteger(s.threshold) ||
        s.threshold < 1 ||
        s.threshold > s.nodes.length ||
        s.nodes.length > 32
      ) {
        throw new RangeError(
          `trust set '${s.name}': threshold must be between 1 and its ${s.nodes.length} share nodes (at most 32)`,
        );
      }
    }
  }

  /** Distributed key generation for `keyName`@`version`: every share node of every set must take part. */
  async generate(keyName: string, version: number, specs: readonly SetSpec[]): Promise<ThresholdKey> {
    this.checkSpecs(specs);
    const sets = await Promise.all(specs.map((s) => this.#generateSet(keyName, version, s)));
    const publicKey = sets
      .map((s) => pointFromBytes(b64u.decode(s.commitments[0]!, "C_0"), "C_0"))
      .reduce((a, b) => a.add(b));
    if (publicKey.is0())
      throw new ThresholdRoundError([], "the generated public key is the identity; run it again");
    const descriptor: Descriptor = { format: DESCRIPTOR_FORMAT, publicKey: encodePoint(publicKey), sets };
    return new ThresholdKey(keyName, version, descriptor);
  }

  async #generateSet(key: string, version: number, spec: SetSpec): Promise<TrustSet> {
    const members: Member[] = await Promise.all(
      spec.nodes.map(async (node, i) => {
        const url = this.options.nodes.get(node)!;
        const info = await fetchInfo(node, url, this.#timeout).catch((err: unknown) => {
          throw new ThresholdRoundError(
            [node],
            `key generation needs every share node of set '${spec.name}': ${(err as Error).message}`,
          );
        });
        return { index: i + 1, node, url, identityKey: info.identityKey, hpkeKey: info.hpkeKey };
      }),
    );
    const round: Round = {
      shareId: hex.encode(randomBytes(16)),
      key,
      version,
      set: spec.name,
      epoch: 1,
      threshold: spec.threshold,
      participants: members.map(({ index, node, identityKey, hpkeKey }) => ({
        index,
        node,
        identityKey,
        hpkeKey,
      })),
      kind: "dkg",
    };
    const dealings = await this.#runRound(round, members);
    const commitments = addCommitments(
      dealings.map((d) => d.commitments.map((c) => pointFromBytes(b64u.decode(c, "C"), "C"))),
    );
    await this.#complete(round, members, dealings, commitments);
    return {
      name: spec.name,
      threshold: spec.threshold,
      shareId: round.shareId,
      epoch: 1,
      members,
      commitments: commitments.map(encodePoint),
    };
  }

  /** Asks every member to deal; every member must answer. */
  async #runRound(round: Round, members: Member[]): Promise<DealingT[]> {
    const results = await Promise.allSettled(
      members.map((m) =>
        callShareNode(
          this.options.signer,
          this.#ref(m),
          "/v1/threshold/dkg/deal",
          { round, self: m.index },
          Dealing,
          this.#timeout,
        ),
      ),
    );
    const failed = results.flatMap((r, i) =>
      r.status === "rejected" ? [`${members[i]!.node}: ${(r.reason as Error).message}`] : [],
    );
    if (failed.length) {
      throw new ThresholdRoundError(
        members.filter((_, i) => results[i]!.status === "rejected").map((m) => m.node),
        `${round.kind} of set '${round.set}' needs every share node: ${failed.join("; ")}`,
      );
    }
    const dealings = results.map((r) => (r as PromiseFulfilledResult<DealingT>).value);
    dealings.forEach((d, i) => {
      if (d.from !== members[i]!.index)
        throw new ThresholdRoundError(
          [members[i]!.node],
          `share node ${members[i]!.node} dealt as another index`,
        );
    });
    return dealings;
  }

  /** Hands every member all dealings; checks each returned verification share against the commitments. */
  async #complete(
    round: Round,
    members: Member[],
    dealings: DealingT[],
    commitments: Point[],
  ): Promise<void> {
    const results = await Promise.allSettled(
      members.map((m) =>
        callShareNode(
          this.options.signer,
          this.#ref(m),
          "/v1/threshold/dkg/complete",
          { round, self: m.index, dealings },
          CompleteResponse,
          this.#timeout,
        ),
      ),
    );
    const bad: string[] = [];
    const why: string[] = [];
    results.forEach((r, i) => {
      const m = members[i]!;
      if (r.status === "rejected") {
        bad.push(m.node);
        why.push((r.reason as Error).message);
        return;
      }
      const expected = evaluateCommitments(commitments, m.index);
      if (r.value.verificationShare !== encodePoint(expected)) {
        bad.push(m.node);
        why.push(`share node ${m.node}: its verification share does not match the commitments`);
      }
    });
    if (bad.length)
      throw new ThresholdRoundError(
        bad,
        `${round.kind} of set '${round.set}' failed, nothing changed: ${why.join("; ")}`,
      );
  }

  /**
   * Proactive refresh: every member deals a sharing of zero, each adds its
   * shares to its current one under the next epoch (pending until commit).
   * Returns the new descriptor; the public key is unchanged.
   */
  async refresh(key: ThresholdKey): Promise<ThresholdKey> {
    const sets: TrustSet[] = [];
    for (const set of key.descriptor.sets) {
      const round: Round = {
        shareId: set.shareId,
        key: key.keyName,
        version: key.keyVersion,
        set: set.name,
        epoch: set.epoch + 1,
        threshold: set.threshold,
        participants: set.members.map(({ index, node, identityKey, hpkeKey }) => ({
          index,
          node,
          identityKey,
          hpkeKey,
        })),
        kind: "refresh",
      };
      const dealings = await this.#runRound(round, set.members);
      const old = set.commitments.map((c) => pointFromBytes(b64u.decode(c, "C"), "C"));
      const deltas = addCommitments(
        dealings.map((d) => d.commitments.map((c) => pointFromBytes(b64u.decode(c, "C"), "C"))),
      );
      const commitments = old.map((c, l) => (l === 0 ? c : c.add(deltas[l - 1]!)));
      await this.#complete(round, set.members, dealings, commitments);
      sets.push({ ...set, epoch: round.epoch, commitments: commitments.map(encodePoint) });
    }
    return new ThresholdKey(key.keyName, key.keyVersion, { ...key.descriptor, sets });
  }

  /**
   * Tells every member the epoch in `key` is in use (drops the older share).
   * Best effort: a member that misses it keeps answering from its pending
   * share and is told again at the next refresh. Returns the nodes not reached.
   */
  async commit(key: ThresholdKey): Promise<string[]> {
    const missed: string[] = [];
    await Promise.all(
      key.descriptor.sets.flatMap((set) =>
        set.members.map((m) =>
          callShareNode(
            this.options.signer,
            this.#ref(m),
            "/v1/threshold/commit",
            { shareId: set.shareId, epoch: set.epoch },
            CommitResponse,
            this.#timeout,
          ).catch(() => {
            missed.push(m.node);
          }),
        ),
      ),
    );
    return missed;
  }

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
        this.#ref(m),
        "/v1/threshold/partial",
        { shareId: set.shareId, epoch: set.epoch, point, key: key.keyName, version: key.keyVersion },
        PartialResponse,
        this.#timeout,
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
