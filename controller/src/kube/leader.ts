// Leader election on a coordination.k8s.io Lease, as client-go does it: the holder renews
// every retry period; a candidate takes the lease once it has not been renewed for the
// lease duration. Losing the lease ends leadership (the caller exits and restarts).
import { setTimeout as delay } from "node:timers/promises";
import { CoordinationV1Api, type KubeConfig, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import { errorText, log, statusCode } from "../log.ts";

export interface LeaderOptions {
  readonly namespace: string;
  readonly name: string;
  readonly identity: string;
  readonly leaseDurationMs?: number;
  readonly renewDeadlineMs?: number;
  readonly retryPeriodMs?: number;
}

export class LeaderElector {
  readonly #api: CoordinationV1Api;
  readonly #o: Required<LeaderOptions>;
  #stopped = false;
  #leading = false;
  /** Who held the lease at the last failed attempt, so a standby logs each new holder once. */
  #holder: string | undefined;

  constructor(kc: KubeConfig, options: LeaderOptions) {
    this.#api = kc.makeApiClient(CoordinationV1Api);
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** Resolves once this process holds the lease; a standby logs who holds it meanwhile. */
  async acquire(): Promise<void> {
    const lease = `${this.#o.namespace}/${this.#o.name}`;
    let logged: string | undefined;
    while (!this.#stopped) {
      if (await this.#tryAcquireOrRenew()) {
        this.#leading = true;
        log("info", "became leader", { lease, identity: this.#o.identity });
        return;
      }
      if (this.#holder !== undefined && this.#holder !== logged) {
        logged = this.#holder;
        log("info", "standing by: waiting for the lease", { lease, holder: logged, identity: this.#o.identity });
      }
      await delay(this.#o.retryPeriodMs);
    }
  }

  /** Renews until a renewal misses the deadline or stop(); resolves when leadership is lost. */
  async holdUntilLost(): Promise<void> {
    let lastRenew = Date.now();
    while (!this.#stopped) {
      await delay(this.#o.retryPeriodMs);
      if (this.#stopped) break;
      if (await this.#tryAcquireOrRenew()) lastRenew = Date.now();
      else if (Date.now() - lastRenew > this.#o.renewDeadlineMs) break;
    }
    this.#leading = false;
  }

  /** Gives the lease up so another replica takes over at once. */
  async release(): Promise<void> {
    this.#stopped = true;
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace });
      if (lease.spec?.holderIdentity !== this.#o.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1 };
      await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease });
    } catch (err) {
      log("warn", "could not release the lease", { error: errorText(err) });
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const now = new V1MicroTime();
    const durationSeconds = Math.ceil(this.#o.leaseDurationMs / 1000);
    try {
      let lease: V1Lease;
      try {
        lease = await this.#api.readNamespacedLease({ name, namespace });
      } catch (err) {
        if (statusCode(err) !== 404) throw err;
        await this.#api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const held = spec.holderIdentity !== undefined && spec.holderIdentity !== identity;
      const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
      if (held && Date.now() - renewed < (spec.leaseDurationSeconds ?? durationSeconds) * 1000) {
        this.#holder = spec.holderIdentity;
        return false;
      }
      lease.spec = {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: now,
        ...(spec.holderIdentity === identity
          ? {}
          : { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
      };
      await this.#api.replaceNamespacedLease({ name, namespace, body: lease });
      return true;
    } catch (err) {
      if (statusCode(err) !== 409) log("warn", "lease update failed", { error: errorText(err) });
      return false;
    }
  }
}
