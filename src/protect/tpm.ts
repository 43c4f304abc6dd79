/**
 * The TPM protection level (ARCHITECTURE, "derive, then wrap"): a key lives
 * in this node's TPM as a keyed-hash (HMAC) object under an ephemeral ECC
 * primary of the NULL hierarchy, and `prf` is TPM2_HMAC. The NULL seed
 * changes at every TPM reset, so a loaded object — and the private blob it
 * was loaded from — is useless on another machine or after a reboot. Key
 * bytes cross the bus once, encrypted by a salted session, into TPM2_Create;
 * they are zeroed as soon as the TPM holds them.
 *
 * TPMs keep only a few transient objects (three on swtpm), so `TpmKeys` keeps
 * every key's private blob, loads keys on demand, evicts the least recently
 * used one when the TPM runs out of object memory, and flushes what it
 * evicts. It notices a TPM reset (the primary's name changed or its handle is
 * gone): every key it held is then lost for good, and it tells its listeners,
 * so the node can go back to sealed instead of answering with broken keys.
 */
import type { Logger } from "pino";
import { abytes, constantTimeEqual, randomBytes } from "../crypto/bytes.js";
import type { KeyHandle } from "../crypto/key-handle.js";
import type { Secret } from "../crypto/secret.js";
import type { TpmClient, TpmExec } from "../tpm/client.js";
import type { Authorization } from "../tpm/command.js";
import { create } from "../tpm/commands/create.js";
import { createPrimary } from "../tpm/commands/create-primary.js";
import { flushContext } from "../tpm/commands/flush-context.js";
import { getProperties } from "../tpm/commands/get-capability.js";
import { hmac } from "../tpm/commands/hmac.js";
import { load } from "../tpm/commands/load.js";
import { readPublicArea } from "../tpm/commands/read-public.js";
import { startAuthSession } from "../tpm/commands/start-auth-session.js";
import { LIMITS, TPM_PT, TPM_RH } from "../tpm/constants.js";
import type { LoadedObject } from "../tpm/object.js";
import { TpmError, TpmUnavailableError } from "../tpm/rc.js";
import type { AuthSession } from "../tpm/session.js";
import { eccStorageTemplate, hmacKeyTemplate } from "./templates.js";

/** The TPM was reset since this key was loaded: the key is gone; the node must be unsealed again. */
export class TpmResetError extends TpmUnavailableError {
  override name = "TpmResetError";
}

const EMPTY = new Uint8Array(0);
const PASSWORD_EMPTY: Authorization = { kind: "password", authValue: EMPTY };

interface Ready {
  primary: LoadedObject;
  session: AuthSession;
}

export class TpmKeys {
  readonly client: TpmClient;
  readonly #log: Logger | undefined;
  #ready: Ready | null = null;
  /** Bumped at every TPM reset; a key made in an older generation is dead. */
  #generation = 0;
  #suspect = false;
  #capacity = 1;
  /** Loaded key objects, least recently used first. */
  #loaded = new Map<TpmKeyHandle, LoadedObject>();
  #resetListeners: ((why: string) => void)[] = [];

  constructor(client: TpmClient, log?: Logger) {
    this.client = client;
    this.#log = log;
  }

  get generation(): number {
    return this.#generation;
  }

  /** Called (once per reset) when the TPM lost every key it held. */
  onReset(listener: (why: string) => void): void {
    this.#resetListeners.push(listener);
  }

  /** Connects, makes the NULL primary and the salted session. Throws TpmUnavailableError if the TPM cannot be reached. */
  async start(): Promise<void> {
    await this.client.exclusive((x) => this.#ensureReady(x));
  }

  /**
   * Loads `key` (32 bytes) into the TPM as an HMAC key and disposes `key`:
   * from here on only the TPM has it.
   */
  async importKey(key: Secret): Promise<TpmKeyHandle> {
    try {
      return await this.client.exclusive(async (x) => {
        const ready = await this.#ensureReady(x);
        const authValue = randomBytes(32);
        authValue[31] = authValue[31] || 1; // no trailing zero: the TPM would strip it
        const created = await this.#withObjectMemory(x, () =>
          create(x, {
            parent: ready.primary,
            auth: this.#sessionAuth(ready, EMPTY),
            template: hmacKeyTemplate(),
            sensitive: { userAuth: authValue, data: key.reveal() },
            encryptWith: ready.session,
          }),
        );
        return new TpmKeyHandle(this, this.#generation, created.private, created.publicBytes, authValue);
      });
    } finally {
      key.dispose();
    }
  }

  /**
   * Runs `fn` with the TPM to itself after flushing every loaded key (they
   * reload on demand): the TPM seal needs the SRK and its sealed object
   * loaded beside our primary, and TPMs have as few as three object slots.
   */
  withRoom<T>(fn: (x: TpmExec) => Promise<T>): Promise<T> {
    return this.client.exclusive(async (x) => {
      while (await this.#evictOne(x)) {}
      return fn(x);
    });
  }

  /** A TpmRunner (tpm-seal.ts) that makes room first. */
  readonly roomy = { exclusive: <T>(fn: (x: TpmExec) => Promise<T>) => this.withRoom(fn) };

  /** `prf` of a handle: TPM2_HMAC, loading the key first if it was evicted. */
  async hmac(handle: TpmKeyHandle, input: Uint8Array): Promise<Uint8Array> {
    abytes(input, "input");
    if (input.length > LIMITS.maxBuffer)
      throw new RangeError(`TPM prf input is limited to ${LIMITS.maxBuffer} bytes`);
    return this.client.exclusive(async (x) => {
      // A second attempt only after a vanished handle: #ensureReady then tells a TPM reset from a hiccup.
      for (let attempt = 1; ; attempt++) {
        const ready = await this.#ensureReady(x);
        if (handle.generation !== this.#generation)
          throw new TpmResetError("the TPM was reset since this key was loaded");
        try {
          const obj = await this.#ensureLoaded(x, ready, handle);
          return await hmac(x, obj, this.#sessionAuth(ready, handle.authValue), input, ready.session);
        } catch (err) {
          const classified = this.#classify(err);
          if (attempt < 2 && this.#suspect && !(err instanceof TpmUnavailableError)) continue;
          throw classified;
        }
      }
    });
  }

  /** Flushes `handle` if it is loaded. */
  async forget(handle: TpmKeyHandle): Promise<void> {
    if (!this.#loaded.has(handle)) return;
    await this.client
      .exclusive(async (x) => {
        const obj = this.#loaded.get(handle);
        this.#loaded.delete(handle);
        if (obj && handle.generation === this.#generation) await flushContext(x, obj.handle);
      })
      .catch((err) => this.#log?.warn({ err }, "could not flush a TPM key object"));
  }

  /** Flushes everything this process holds in the TPM and closes the connection. */
  async close(): Promise<void> {
    await this.client
      .exclusive(async (x) => {
        for (const obj of this.#loaded.values()) await flushContext(x, obj.handle).catch(() => {});
        this.#loaded.clear();
        if (this.#ready) {
          await flushContext(x, this.#ready.session.handle).catch(() => {});
          await flushContext(x, this.#ready.primary.handle).catch(() => {});
          this.#ready.session.close();
          this.#ready = null;
        }
      })
      .catch(() => {});
    await this.client.close();
  }

  #sessionAuth(ready: Ready, authValue: Uint8Array): Authorization {
    return { kind: "session", session: ready.session, authValue };
  }

  /** Makes sure the primary and the session exist, noticing a TPM reset on the way. */
  async #ensureReady(x: TpmExec): Promise<Ready> {
    try {
      if (this.#ready && this.#suspect) {
        const current = await readPublicArea(x, this.#ready.primary.handle).catch((err) => {
          if (err instanceof TpmError) return null;
          throw err;
        });
        if (!current || !constantTimeEqual(current.name, this.#ready.primary.name))
          this.#reset("the TPM was reset");
        this.#suspect = false;
      }
      if (this.#ready?.session.closed) this.#ready = null;
      if (this.#ready) return this.#ready;
      if (this.#generation === 0 && this.#loaded.size === 0) {
        const props = await getProperties(x, TPM_PT.HR_TRANSIENT_MIN, 1);
        const slots = props.properties.get(TPM_PT.HR_TRANSIENT_MIN) ?? 3;
        // The primary takes one slot, a Create or Load in progress another.
        this.#capacity = Math.max(1, slots - 2);
      }
      const primary = await createPrimary(x, {
        hierarchy: TPM_RH.NULL,
        auth: PASSWORD_EMPTY,
        template: eccStorageTemplate(),
      });
      const session = await startAuthSession(x, primary, "hmac").catch(async (err) => {
        await flushContext(x, primary.handle).catch(() => {});
        throw err;
      });
      this.#ready = { primary, session };
      if (this.#generation === 0) this.#generation = 1;
      return this.#ready;
    } catch (err) {
      throw this.#classify(err);
    }
  }

  #reset(why: string): void {
    this.#log?.error({ why }, "TPM reset: every key held in the TPM is lost");
    this.#ready?.session.close();
    this.#ready = null;
    this.#loaded.clear();
    this.#generation++;
    for (const l of this.#resetListeners) {
      try {
        l(why);
      } catch (err) {
        this.#log?.error({ err }, "TPM reset listener failed");
      }
    }
  }

  /** A transport failure or a vanished handle makes the next use check for a reset first. */
  #classify(err: unknown): unknown {
    if (err instanceof TpmUnavailableError) this.#suspect = true;
    if (err instanceof TpmError && (err.is("HANDLE") || err.decoded.name.startsWith("REFERENCE_"))) {
      this.#suspect = true;
      return new TpmUnavailableError(`${err.message}; checking the TPM for a reset`);
    }
    return err;
  }

  async #ensureLoaded(x: TpmExec, ready: Ready, handle: TpmKeyHandle): Promise<LoadedObject> {
    const have = this.#loaded.get(handle);
    if (have) {
      this.#loaded.delete(handle);
      this.#loaded.set(handle, have);
      return have;
    }
    while (this.#loaded.size >= this.#capacity) await this.#evictOne(x);
    const obj = await this.#withObjectMemory(x, () =>
      load(x, {
        parent: ready.primary,
        auth: this.#sessionAuth(ready, EMPTY),
        private: handle.private,
        publicBytes: handle.publicBytes,
      }),
    );
    this.#loaded.set(handle, obj);
    return obj;
  }

  async #evictOne(x: TpmExec): Promise<boolean> {
    const first = this.#loaded.entries().next();
    if (first.done) return false;
    const [h, obj] = first.value;
    this.#loaded.delete(h);
    await flushContext(x, obj.handle).catch(() => {});
    return true;
  }

  /** Runs `fn`; on TPM_RC_OBJECT_MEMORY evicts a loaded key and tries again. */
  async #withObjectMemory<T>(x: TpmExec, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof TpmError && err.is("OBJECT_MEMORY") && (await this.#evictOne(x))) {
          this.#capacity = Math.max(1, this.#loaded.size);
          continue;
        }
        throw this.#classify(err);
      }
    }
  }
}

/** A key held by the TPM. What this process keeps is the parent-sealed private blob and a random authValue. */
export class TpmKeyHandle implements KeyHandle {
  readonly #keys: TpmKeys;
  readonly generation: number;
  readonly private: Uint8Array;
  readonly publicBytes: Uint8Array;
  readonly #authValue: Uint8Array;
  #disposed = false;

  constructor(
    keys: TpmKeys,
    generation: number,
    priv: Uint8Array,
    publicBytes: Uint8Array,
    authValue: Uint8Array,
  ) {
    this.#keys = keys;
    this.generation = generation;
    this.private = priv;
    this.publicBytes = publicBytes;
    this.#authValue = authValue;
  }

  get authValue(): Uint8Array {
    if (this.#disposed) throw new Error("TPM key used after dispose()");
    return this.#authValue;
  }

  prf(input: Uint8Array): Promise<Uint8Array> {
    if (this.#disposed) return Promise.reject(new Error("TPM key used after dispose()"));
    return this.#keys.hmac(this, input);
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#authValue.fill(0);
    void this.#keys.forget(this);
  }

  toString(): string {
    return "TpmKeyHandle";
  }
}
