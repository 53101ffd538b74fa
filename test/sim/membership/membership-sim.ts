import {
  initialMembership,
  type MembershipChange,
  type MembershipState,
  membershipStep,
} from '@pgmesh/mesh-node'
import { type Heartbeat, type MembershipTimings, MembershipTimingsSchema } from '@pgmesh/protocol'

/**
 * A membership simulation on the pure step: N members heartbeat on their own phase; every
 * heartbeat reaches each receiver after a random delay unless lost or cut by a partition. Receivers
 * are independent in this model (heartbeats carry no member lists), so `observers` receivers are
 * simulated exactly while all N send: 1,000 members cost a few observers, not a million steps.
 */
export interface MembershipSimOptions {
  readonly members: number
  readonly observers: number
  readonly seed: number
  readonly durationMs: number
  /** every member starts at a random time in [0, joinSpreadMs) */
  readonly joinSpreadMs: number
  readonly loss: number
  readonly delayMs: readonly [number, number]
  /** members with index < members/2 are cut from the others during [from, to) */
  readonly partition?: { readonly fromMs: number; readonly toMs: number }
  readonly timings?: Partial<MembershipTimings>
}

export interface MembershipSimResult {
  /** virtual ms from the last member's start until every observer lists every member alive */
  readonly convergedMs: number | null
  /** a reachable, running member marked suspect by an observer (soft: it comes back with its next heartbeat) */
  readonly falseSuspicions: number
  /** a reachable, running member marked dead by an observer: what the failure detector must never do at modest loss */
  readonly falseDeaths: number
  /** heartbeats one observer received per second, on average */
  readonly messagesPerSecond: number
  /** after a partition heals: ms until every observer lists every member alive again */
  readonly healedMs: number | null
  /** whether, during the partition, every observer marked the far side suspect or dead */
  readonly partitionSeen: boolean
  readonly steps: number
}

function prng(seed: number): () => number {
  let a = seed >>> 0 || 1
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Ev {
  readonly at: number
  readonly seq: number
  readonly observer: number
  /** a heartbeat from this member, or a tick */
  readonly from: number | null
  readonly hbSeq: number
}

/** A binary heap of events ordered by time, then insertion. */
class Queue {
  readonly #h: Ev[] = []
  push(e: Ev): void {
    const h = this.#h
    h.push(e)
    let i = h.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!before(h[i]!, h[p]!)) break
      ;[h[i], h[p]] = [h[p]!, h[i]!]
      i = p
    }
  }
  pop(): Ev | undefined {
    const h = this.#h
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last !== undefined) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < h.length && before(h[l]!, h[m]!)) m = l
        if (r < h.length && before(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }
  get size(): number {
    return this.#h.length
  }
}
const before = (a: Ev, b: Ev) => a.at < b.at || (a.at === b.at && a.seq < b.seq)

const id = (i: number) => `m${i}`

function heartbeat(i: number, seq: number): Heartbeat {
  return {
    v: 1,
    kind: 'heartbeat',
    cluster: 'sim',
    node: id(i),
    peerId: `peer-${i}`,
    incarnation: 1,
    sentAt: 0,
    seq,
    priority: 100,
    addrs: [],
    api: null,
    configVersion: 1,
  }
}

export function runMembershipSim(o: MembershipSimOptions): MembershipSimResult {
  const t = MembershipTimingsSchema.parse(o.timings ?? {})
  const random = prng(o.seed)
  const q = new Queue()
  let seq = 0
  const starts = Array.from({ length: o.members }, () => random() * o.joinSpreadMs)
  const lastStart = Math.max(...starts)
  const states: MembershipState[] = []
  for (let k = 0; k < o.observers; k++) {
    states.push(initialMembership(id(k)))
    q.push({ at: starts[k]!, seq: seq++, observer: k, from: null, hbSeq: 0 })
  }
  const side = (i: number) => (i < o.members / 2 ? 0 : 1)
  const cut = (a: number, b: number, at: number) =>
    o.partition !== undefined && at >= o.partition.fromMs && at < o.partition.toMs && side(a) !== side(b)
  // each member's heartbeats, delivered to each observer
  for (let i = 0; i < o.members; i++) {
    let hbSeq = 0
    for (let at = starts[i]!; at < o.durationMs; at += t.heartbeatIntervalMs) {
      hbSeq++
      for (let k = 0; k < o.observers; k++) {
        if (k === i || random() < o.loss || cut(i, k, at)) continue
        const delay = o.delayMs[0] + random() * (o.delayMs[1] - o.delayMs[0])
        q.push({ at: at + delay, seq: seq++, observer: k, from: i, hbSeq })
      }
    }
  }
  let steps = 0
  let received = 0
  let falseSuspicions = 0
  let falseDeaths = 0
  let convergedAt: number | null = null
  let healedAt: number | null = null
  let partitionSeen = o.partition === undefined
  const allAlive = () =>
    states.every((s) => {
      let alive = 0
      for (const r of s.members.values()) if (r.state === 'alive') alive++
      return alive === o.members - 1
    })
  const tickEvery = Math.max(10, t.heartbeatIntervalMs / 2)
  for (let e = q.pop(); e !== undefined; e = q.pop()) {
    if (e.at >= o.durationMs) break
    const k = e.observer
    let changes: readonly MembershipChange[]
    if (e.from === null) {
      const r = membershipStep(states[k]!, { type: 'tick' }, e.at, t)
      states[k] = r.state
      changes = r.changes
      q.push({ at: e.at + tickEvery, seq: seq++, observer: k, from: null, hbSeq: 0 })
    } else {
      received++
      const r = membershipStep(states[k]!, { type: 'heartbeat', msg: heartbeat(e.from, e.hbSeq) }, e.at, t)
      states[k] = r.state
      changes = r.changes
    }
    steps++
    for (const c of changes) {
      if (c.type !== 'state' || (c.to !== 'suspect' && c.to !== 'dead')) continue
      const member = Number(c.id.slice(1))
      const reachable = !cut(member, k, e.at) && !cut(member, k, e.at - t.deadTimeoutMs)
      if (reachable && c.to === 'suspect') falseSuspicions++
      if (reachable && c.to === 'dead') falseDeaths++
    }
    if (convergedAt === null && e.at >= lastStart && allAlive()) convergedAt = e.at
    const p = o.partition
    if (p !== undefined && !partitionSeen && e.at >= p.fromMs && e.at < p.toMs) {
      partitionSeen = states.every((s, kk) =>
        [...s.members.values()].every((r) => side(Number(r.id.slice(1))) === side(kk) || r.state !== 'alive'),
      )
    }
    if (p !== undefined && healedAt === null && e.at >= p.toMs && allAlive()) healedAt = e.at
  }
  const observedSeconds = (o.durationMs - lastStart) / 1000
  return {
    convergedMs: convergedAt === null ? null : Math.round(convergedAt - lastStart),
    falseSuspicions,
    falseDeaths,
    messagesPerSecond: Math.round(received / o.observers / Math.max(observedSeconds, 1e-9)),
    healedMs: o.partition === undefined || healedAt === null ? null : Math.round(healedAt - o.partition.toMs),
    partitionSeen,
    steps,
  }
}
