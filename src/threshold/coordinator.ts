/**
 * The custos node's side of threshold keys (docs/FORMATS.md §11): it runs
 * the DKG and refresh rounds over HTTP without ever seeing a share in the
 * clear (dealings carry HPKE ciphertexts addressed to each share node), and it
 * computes S = x·R for an unwrap from partials of a quorum of every trust set
 * on a blinded point (unwrap.ts). Every generation and refresh round needs
 * every member of every set and is abandoned, naming the share nodes at
 * fault, if any fails. Every call goes over one ShareNodeLink (HTTPS with the
 * configured CA and client certificate; plain http:// only to loopback unless
 * allowed), and the configured URLs are checked against it at construction,
 * so a bad URL stops the node at start rather than at the first unwrap.
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
import { addCommitments, evaluateCommitments } from "./feldman.js";
import { type Point, pointFromBytes } from "./group.js";
import type { RequestSigner } from "./request-auth.js";
import { callShareNode, DEFAULT_TIMEOUT_MS, fetchInfo, type ShareNodeRef } from "./share-node-client.js";
import { DEFAULT_LINK, type ShareNodeLink } from "./share-node-link.js";
import { PartialCollector } from "./unwrap.js";
import { CommitResponse, CompleteResponse, Dealing, type Dealing as DealingT, type Round } from "./wire.js";

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
  /** How share nodes are reached; default: https:// with the system CAs, or http:// on loopback. */
  link?: ShareNodeLink;
  /** Called with the names of share nodes that gave partials failing their proofs. */
  onBadPartial?: (nodes: string[]) => void;
}

export class ThresholdCoordinator {
  readonly #timeout: number;
  readonly #link: ShareNodeLink;
  readonly #collector: PartialCollector;

  /** Throws RangeError naming the share node whose URL the link refuses. */
  constructor(private readonly options: CoordinatorOptions) {
    this.#timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#link = options.link ?? DEFAULT_LINK;
    for (const [name, url] of options.nodes) {
      try {
        this.#link.check(url);
      } catch (err) {
        throw new RangeError(`share node '${name}': ${(err as Error).message}`);
      }
    }
    this.#collector = new PartialCollector({
      ...options,
      link: this.#link,
      timeoutMs: this.#timeout,
      ref: (m) => this.#ref(m),
    });
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
        const info = await fetchInfo(node, url, this.#timeout, this.#link).catch((err: unknown) => {
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
          this.#link,
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
          this.#link,
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
            this.#link,
          ).catch(() => {
            missed.push(m.node);
          }),
        ),
      ),
    );
    return missed;
  }

  /** S = x·R from a quorum of every trust set (unwrap.ts). Throws ThresholdUnavailableError naming the nodes that failed. */
  sharedPoint(key: ThresholdKey, r: Point): Promise<Point> {
    return this.#collector.sharedPoint(key, r);
  }
}
