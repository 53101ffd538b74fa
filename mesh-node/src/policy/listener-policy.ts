/**
 * One listener's traffic policy, pure and sans-IO: who may connect (allow/deny), how much
 * (per-source limits), where a returning client goes (stick table), and from whom a PROXY
 * header is expected. `now` is always the injected monotonic clock's.
 */
import {
  formatIp,
  type IpAddress,
  type ListenerConfig,
  type ListenerPolicyDelta,
  type ListenerPolicyStatus,
  POLICY_DELTA_MAX_PER_LISTENER,
  POLICY_REFUSALS,
  type PolicyRefusal,
  parseCidr,
  parseIp,
} from '@pgmesh/protocol'
import { AccessList } from './access-list.js'
import { PrefixTrie } from './prefix-trie.js'
import { SourceLimits } from './source-limits.js'
import { StickTable } from './stick-table.js'
import { TopSources } from './top-sources.js'

export type PolicyConfig = Pick<ListenerConfig, 'allow' | 'deny' | 'limits' | 'stick' | 'proxyProtocol'>

/** Whether the listener has any policy at all (none: the listener runs without one). */
export function hasPolicy(c: PolicyConfig): boolean {
  return (
    c.allow.length > 0 ||
    c.deny.length > 0 ||
    c.limits !== undefined ||
    c.stick !== undefined ||
    c.proxyProtocol !== undefined
  )
}

export type Admission =
  /** `slot`: what {@link ListenerPolicy.release} takes back when the connection ends */
  | { readonly ok: true; readonly source: string; readonly slot: string }
  | { readonly ok: false; readonly reason: PolicyRefusal; readonly detail: string }

/** What a connection from a peer address must start with. */
export type ProxyExpectation = 'none' | 'optional' | 'required'

const RULES_SHOWN = 50
const LIMITED_SHOWN = 10
const STICK_SHOWN = 50

export class ListenerPolicy {
  #config: PolicyConfig
  #access: AccessList
  #trusted: PrefixTrie | null
  #limits: SourceLimits | null
  #stick: StickTable | null
  readonly #limited = new TopSources(64)
  readonly refused: Record<PolicyRefusal, number> = Object.fromEntries(
    POLICY_REFUSALS.map((r) => [r, 0]),
  ) as Record<PolicyRefusal, number>

  constructor(config: PolicyConfig) {
    this.#config = config
    this.#access = new AccessList(config.allow, config.deny)
    this.#trusted = trustedOf(config)
    this.#limits = config.limits === undefined ? null : new SourceLimits(config.limits)
    this.#stick = config.stick === undefined ? null : new StickTable(config.stick)
  }

  /** A new config: rule hit counts, rate buckets and sticky entries carry over where they still apply. */
  update(config: PolicyConfig): void {
    this.#config = config
    this.#access = new AccessList(config.allow, config.deny, this.#access)
    this.#trusted = trustedOf(config)
    if (config.limits === undefined) this.#limits = null
    else if (this.#limits === null) this.#limits = new SourceLimits(config.limits)
    else this.#limits.update(config.limits)
    if (config.stick === undefined) this.#stick = null
    else if (this.#stick === null) this.#stick = new StickTable(config.stick)
    else this.#stick.update(config.stick)
  }

  get config(): PolicyConfig {
    return this.#config
  }

  /** Whether a connection from `peer` (the socket's address) must, may or must not start with a PROXY header. */
  proxyExpectation(peer: string): ProxyExpectation {
    if (this.#trusted === null) return 'none'
    const ip = parseIp(peer)
    if (ip === null || this.#trusted.match(ip) < 0) return 'none'
    return this.#config.proxyProtocol?.required === false ? 'optional' : 'required'
  }

  /** Counts a refusal the listener made itself (PROXY header problems). */
  refuse(reason: PolicyRefusal): void {
    this.refused[reason]++
  }

  /**
   * Decides on a new connection from `client` (the real client: from the PROXY header when a
   * trusted peer sent one); an admitted one holds a slot until {@link release}.
   */
  admit(client: string, now: number): Admission {
    const ip = parseIp(client)
    if (ip === null) return this.#no('notAllowed', `'${client}' is not an IP address`, null)
    // a dotted quad that parsed is canonical already (the common case: no formatting per accept)
    const source = ip.family === 4 && !client.includes(':') ? client : formatIp(ip)
    if (!this.#access.empty) {
      const v = this.#access.check(ip)
      if (!v.admit) {
        const detail = v.rule === null ? 'not in the allow list' : `denied by ${v.rule.cidr}`
        return this.#no(v.reason, detail, null)
      }
    }
    let slot = source
    if (this.#limits !== null) {
      slot = this.#limitKey(ip, source)
      const v = this.#limits.admit(slot, now)
      if (v !== 'ok') {
        const who = slot === source ? '' : ` from ${this.#shown(slot)}`
        const detail =
          v === 'overConnections'
            ? `more than ${this.#config.limits?.maxConnPerSource} connections at once${who}`
            : `more than ${this.#config.limits?.ratePerSource} new connections per second${who}`
        return this.#no(v, detail, slot)
      }
    }
    return { ok: true, source, slot }
  }

  /** An admitted connection ended: `slot` is its admission's. */
  release(slot: string): void {
    this.#limits?.release(slot)
  }

  /** What the limits count a client as: its address, or for IPv6 its network (`limits.ipv6PrefixBits`). */
  #limitKey(ip: IpAddress, source: string): string {
    const bits = this.#config.limits?.ipv6PrefixBits ?? 128
    if (ip.family === 4 || bits >= 128) return source
    const words = ip.words.map((w, i) => {
      const keep = Math.max(0, Math.min(32, bits - 32 * i))
      return keep === 0 ? 0 : (w & ((0xffffffff << (32 - keep)) >>> 0)) >>> 0
    })
    return formatIp({ family: 6, words })
  }

  /** A limits key as shown: an IPv6 network with its prefix length. */
  #shown(key: string): string {
    const bits = this.#config.limits?.ipv6PrefixBits ?? 128
    return key.includes(':') && bits < 128 ? `${key}/${bits}` : key
  }

  /**
   * Sticky backend choice: the backend `source` is stuck to if it is among `candidates` (routable
   * and able to take it now); otherwise `choose()` picks, and the pick is remembered.
   */
  pick<C extends { readonly id: string }>(
    source: string,
    candidates: readonly C[],
    now: number,
    choose: () => C | null,
  ): C | null {
    const stick = this.#stick
    if (stick === null) return choose()
    const id = stick.get(source, now)
    const stuck = id === null ? undefined : candidates.find((c) => c.id === id)
    const picked = stuck ?? choose()
    if (picked !== null) stick.touch(source, picked.id, now)
    return picked
  }

  /** The backend `source` is stuck to now, if any. */
  stuckTo(source: string, now: number): string | null {
    return this.#stick?.get(source, now) ?? null
  }

  /** What changed here since the previous call, for the other nodes; null when nothing did. */
  exportDelta(
    name: string,
    now: number,
    maxEach = POLICY_DELTA_MAX_PER_LISTENER,
  ): ListenerPolicyDelta | null {
    const rate = this.#limits?.exportUse(now, maxEach) ?? []
    const stick = this.#stick?.exportUse(now, maxEach) ?? []
    this.#stick?.sweep(now)
    if (rate.length === 0 && stick.length === 0) return null
    return { name, rate, stick }
  }

  /** Another node's changes: its admitted connections count against the rate here, its sticky entries are adopted. */
  mergeRemote(delta: ListenerPolicyDelta, now: number): void {
    const limits = this.#limits
    if (limits !== null) for (const r of delta.rate) limits.debit(canonical(r.source), r.used, now)
    const stick = this.#stick
    if (stick !== null) for (const s of delta.stick) stick.merge(canonical(s.source), s.backend, s.ageMs, now)
  }

  /** The sources refused most by the limits (bounded): for status and metrics. */
  limited(n = LIMITED_SHOWN): { source: string; refused: number }[] {
    return this.#limited.top(n).map((x) => ({ ...x, source: this.#shown(x.source) }))
  }

  status(now: number): ListenerPolicyStatus {
    const rules = this.#access.rules
      .filter((r) => r.hits > 0)
      .sort((a, b) => b.hits - a.hits)
      .slice(0, RULES_SHOWN)
      .map(({ list, cidr, hits }) => ({ list, cidr, hits }))
    const stick = this.#stick
    return {
      refused: { ...this.refused },
      rules,
      ruleCount: this.#access.rules.length,
      limited: this.limited(),
      trackedSources: this.#limits?.trackedSources ?? 0,
      connectedSources: this.#limits?.connectedSources ?? 0,
      stick:
        stick === null
          ? null
          : {
              entries: stick.size,
              maxEntries: stick.config.maxEntries,
              recent: stick.recent(now, STICK_SHOWN),
            },
    }
  }

  /** Sizes of the bounded tables, for tests that flood them. */
  sizes(): {
    trackedSources: number
    connectedSources: number
    stickEntries: number
    limitedSources: number
  } {
    return {
      trackedSources: this.#limits?.trackedSources ?? 0,
      connectedSources: this.#limits?.connectedSources ?? 0,
      stickEntries: this.#stick?.size ?? 0,
      limitedSources: this.#limited.size,
    }
  }

  #no(reason: PolicyRefusal, detail: string, source: string | null): Admission {
    this.refused[reason]++
    if (source !== null) this.#limited.add(source)
    return { ok: false, reason, detail }
  }
}

function canonical(s: string): string {
  const ip = parseIp(s)
  return ip === null ? s : formatIp(ip)
}

function trustedOf(c: PolicyConfig): PrefixTrie | null {
  if (c.proxyProtocol === undefined) return null
  const t = new PrefixTrie()
  for (const cidr of c.proxyProtocol.trusted) {
    const p = parseCidr(cidr)
    if (!('error' in p)) t.insert(p, 0)
  }
  return t
}
