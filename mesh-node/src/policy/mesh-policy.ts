/**
 * The policy of every listener on this node, as the mesh sees it: one delta for the heartbeat
 * (bounded in entries and bytes by the protocol schema) and the merge of the deltas peers send.
 */
import {
  POLICY_DELTA_MAX_BYTES,
  POLICY_DELTA_MAX_ENTRIES,
  POLICY_DELTA_MAX_PER_LISTENER,
  type PolicyDelta,
} from '@pgmesh/protocol'
import type { ListenerPolicy } from './listener-policy.js'

export class MeshPolicy {
  #seq = 0
  /** node id → the last delta seq applied from it */
  readonly #seen = new Map<string, number>()

  /** `policies()` gives the listeners' policies by listener name (the current ones, on every call). */
  constructor(private readonly policies: () => ReadonlyMap<string, ListenerPolicy>) {}

  /**
   * What changed on this node's listeners since the previous call (call it once per heartbeat
   * sent); undefined when nothing did. `maxBytes` bounds its JSON: pass less than the heartbeat's
   * room under `cluster.gossip.maxMessageBytes`.
   */
  exportDelta(now: number, maxBytes = POLICY_DELTA_MAX_BYTES): PolicyDelta | undefined {
    const listeners: PolicyDelta['listeners'] = []
    let budget = POLICY_DELTA_MAX_ENTRIES
    for (const [name, p] of this.policies()) {
      if (budget <= 0) break
      const each = Math.min(POLICY_DELTA_MAX_PER_LISTENER, Math.floor(budget / 2))
      const d = p.exportDelta(name, now, Math.max(1, each))
      if (d === null) continue
      budget -= d.rate.length + d.stick.length
      listeners.push(d)
    }
    if (listeners.length === 0) return undefined
    // long backend names or IPv6 sources: keep the most urgent entries (each list is sorted so)
    const limit = Math.min(maxBytes, POLICY_DELTA_MAX_BYTES)
    while (listeners.length > 0 && JSON.stringify(listeners).length > limit) {
      for (const l of listeners) {
        l.rate.length = Math.floor(l.rate.length / 2)
        l.stick.length = Math.floor(l.stick.length / 2)
      }
      for (let i = listeners.length - 1; i >= 0; i--) {
        if (listeners[i]!.rate.length + listeners[i]!.stick.length === 0) listeners.splice(i, 1)
      }
    }
    if (listeners.length === 0) return undefined
    return { seq: ++this.#seq, listeners }
  }

  /**
   * A peer's delta (from a heartbeat that passed the schema). `incarnation` (the heartbeat's)
   * restarts the sequence: a restarted peer counts from 1 again. Returns false for a delta
   * already applied.
   */
  mergeRemote(nodeId: string, delta: PolicyDelta, now: number, incarnation = 0): boolean {
    const key = `${nodeId}#${incarnation}`
    const last = this.#seen.get(key) ?? 0
    if (delta.seq <= last) return false
    this.#seen.set(key, delta.seq)
    // one entry per live incarnation: forget older ones of the same node
    for (const k of this.#seen.keys()) if (k.startsWith(`${nodeId}#`) && k !== key) this.#seen.delete(k)
    const policies = this.policies()
    for (const l of delta.listeners) policies.get(l.name)?.mergeRemote(l, now)
    return true
  }
}
