import {
  compareConfigIds,
  type ElectionAction,
  type ElectionEvent,
  type ElectionState,
  effectivePriority,
  electionStep,
  hasQuorum,
  initElection,
  outranks,
  type PersistedElection,
  vipLeaseUntil,
  type WeightedCheck,
} from '@pgmesh/mesh-node/election'
import type { ElectionConfig, ElectionMessage, VoterConfig } from '@pgmesh/protocol'
import { EventQueue } from './event-queue.js'
import { HOSTILE_ID } from './hostile.js'
import type { Prng } from './prng.js'

/*
 * What "holding the VIP" means here, and what the real driver must do for it to be true.
 *
 * A node holds the VIP from its `acquireVip` until its `releaseVip`, but never past its lease
 * deadline measured on its own clock, even when it is paused (SIGSTOP, a long GC, a frozen VM) or
 * killed. The real driver makes that hold: (1) the proxy checks `vipLeaseUntil` before it accepts
 * or forwards a connection on the VIP, so a process resuming from a pause serves nothing on a
 * lapsed lease before its first step releases it; (2) a killed process serves nothing at all;
 * its address stays configured on the interface (kill -9 runs no cleanup), where it can only
 * answer ARP: the new MASTER's gratuitous ARP (repeated) moves traffic away, and the restarted
 * process removes the stale address before anything else. So a crashed holder holds until its
 * lease deadline, or until its restart if that comes first. The invariant is measured in true
 * (simulated) time; each node's clock runs at its own rate within the configured drift bound.
 */

export type NodeStatus = 'running' | 'paused' | 'crashed' | 'stopped' | 'removed'

export interface SimNode {
  readonly id: string
  readonly priority: number
  readonly checks: readonly WeightedCheck[]
  /** local clock = offset + rate × true time */
  readonly rate: number
  readonly offset: number
  status: NodeStatus
  incarnation: number
  state: ElectionState | null
  disk: PersistedElection | null
  timerToken: number
  pausedInbox: ElectionEvent[]
  failing: Set<string>
  group: number
  holding: boolean
  holdStart: number
  /** true time the current hold ends at the latest (its lease deadline) */
  holdDeadline: number
  /** the term in which the current hold was won */
  holdTerm: number
  lastHoldStart: number
  lastHoldEnd: number
  /** a joining node (not a founding voter) */
  readonly joiner: boolean
}

type SimEvent =
  | {
      readonly kind: 'deliver'
      readonly to: string
      readonly incarnation: number
      readonly from: string
      readonly msg: ElectionMessage
    }
  | { readonly kind: 'timer'; readonly node: string; readonly incarnation: number; readonly token: number }
  | {
      readonly kind: 'input'
      readonly node: string
      readonly incarnation: number
      readonly event: ElectionEvent
    }
  | { readonly kind: 'script'; readonly run: () => void }

export interface NetworkModel {
  lossRate: number
  /** chance that a message is delivered twice */
  duplicateRate: number
  minDelayMs: number
  maxDelayMs: number
  spikeRate: number
  spikeMaxMs: number
}

export interface Acquisition {
  readonly at: number
  readonly id: string
}

export class ClusterSim {
  now = 0
  readonly nodes = new Map<string, SimNode>()
  members: string[] = []
  readonly violations: string[] = []
  readonly acquisitions: Acquisition[] = []
  /** one-way link failures, as `from>to` */
  readonly blockedLinks = new Set<string>()
  readonly trace: string[] | null
  steps = 0
  /** frames the nodes sent while a hostile member listens (the latest 128), for it to replay */
  readonly overheard: { readonly from: string; readonly msg: ElectionMessage }[] = []
  private hostile = false
  private readonly queue = new EventQueue<SimEvent>()
  private readonly votes = new Map<number, Map<string, Set<string>>>()
  private readonly termHolders = new Map<number, string>()

  constructor(
    readonly config: ElectionConfig,
    readonly net: NetworkModel,
    private readonly rng: Prng,
    trace: boolean,
  ) {
    this.trace = trace ? [] : null
  }

  local(n: SimNode, t = this.now): number {
    return n.offset + n.rate * t
  }

  /** The earliest true time at which the node's clock reads at least `local` (no float round-down). */
  private trueTime(n: SimNode, local: number): number {
    let t = (local - n.offset) / n.rate
    while (this.local(n, t) < local) t += Math.max(1e-9, Math.abs(t) * 1e-15)
    return t
  }

  log(line: string): void {
    this.trace?.push(`${this.now.toFixed(3).padStart(10)}  ${line}`)
  }

  violation(message: string): void {
    const line = `t=${this.now.toFixed(3)} ${message}`
    this.violations.push(line)
    this.log(`!!! VIOLATION ${message}`)
  }

  at(t: number, run: () => void): void {
    this.queue.push(Math.max(t, this.now), { kind: 'script', run })
  }

  /** A hostile member (see hostile.ts) starts or stops listening to the nodes' frames. */
  setHostile(on: boolean): void {
    this.hostile = on
    if (!on) this.overheard.length = 0
    this.log(`HOSTILE member ${on ? 'active' : 'gone'}`)
  }

  /** Delivers a frame to `to` as sent by `from`: the hostile member, or a node's frame replayed late. */
  inject(to: string, from: string, msg: ElectionMessage, delayMs: number): void {
    const target = this.nodes.get(to)
    if (target === undefined || (target.status !== 'running' && target.status !== 'paused')) return
    this.queue.push(this.now + delayMs, { kind: 'deliver', to, incarnation: target.incarnation, from, msg })
  }

  addNode(spec: {
    id: string
    priority: number
    checks: readonly WeightedCheck[]
    rate: number
    offset: number
    joiner: boolean
  }): SimNode {
    const n: SimNode = {
      ...spec,
      status: 'crashed',
      incarnation: 0,
      state: null,
      disk: null,
      timerToken: 0,
      pausedInbox: [],
      failing: new Set(),
      group: 0,
      holding: false,
      holdStart: 0,
      holdDeadline: 0,
      holdTerm: 0,
      lastHoldStart: Number.NEGATIVE_INFINITY,
      lastHoldEnd: Number.NEGATIVE_INFINITY,
    }
    this.nodes.set(n.id, n)
    return n
  }

  /** (Re)starts a process: fresh memory, same disk, same host clock. */
  start(id: string, initialVoters: readonly string[] | null): void {
    const n = this.node(id)
    if (n.status === 'running' || n.status === 'paused' || n.status === 'removed') return
    if (n.holding) {
      // the restarted process removes the stale VIP before anything else
      n.holding = false
      n.lastHoldStart = n.holdStart
      n.lastHoldEnd = Math.min(this.now, n.holdDeadline)
    }
    n.status = 'running'
    n.incarnation += 1
    n.pausedInbox = []
    const r = initElection({
      opts: { self: id, priority: n.priority, checks: n.checks, config: this.config },
      now: this.local(n),
      seed: this.rng.uint32(),
      persisted: n.disk,
      initialVoters,
    })
    n.state = r.state
    this.log(`${id} START incarnation ${n.incarnation} term ${r.state.term}`)
    this.applyAll(n, r.actions)
    this.input(n, { type: 'members', ids: this.members }, 1)
    for (const name of n.failing) this.input(n, { type: 'check', name, passing: false }, 0)
  }

  crash(id: string): void {
    const n = this.node(id)
    if (n.status !== 'running' && n.status !== 'paused') return
    n.status = 'crashed'
    n.state = null
    this.log(`${id} CRASH (kill -9)${n.holding ? ' while holding the VIP' : ''}`)
    this.announceDisconnect(n)
  }

  /** Graceful stop: the node steps once more (release + announce), then its process exits. */
  stop(id: string): void {
    const n = this.node(id)
    if (n.status !== 'running') return
    this.deliverNow(n, { type: 'shutdown' })
    n.status = 'stopped'
    n.state = null
    this.log(`${id} STOPPED`)
    this.announceDisconnect(n)
  }

  pause(id: string): void {
    const n = this.node(id)
    if (n.status !== 'running') return
    n.status = 'paused'
    this.log(`${id} PAUSE${n.holding ? ' while holding the VIP' : ''}`)
  }

  resume(id: string): void {
    const n = this.node(id)
    if (n.status !== 'paused') return
    n.status = 'running'
    const inbox = n.pausedInbox
    n.pausedInbox = []
    this.log(`${id} RESUME with ${inbox.length} queued events`)
    for (const e of inbox) {
      if (n.status !== 'running') break
      this.deliverNow(n, e)
    }
  }

  remove(id: string): void {
    const n = this.node(id)
    n.status = 'removed'
    n.state = null
  }

  setMembers(ids: readonly string[]): void {
    this.members = [...ids].sort()
    this.log(`MEMBERS ${this.members.join(',')}`)
    for (const n of this.nodes.values()) {
      if (n.status === 'running' || n.status === 'paused') {
        this.input(n, { type: 'members', ids: this.members }, this.rng.range(5, 300))
      }
    }
  }

  setCheck(id: string, name: string, passing: boolean): void {
    const n = this.node(id)
    if (passing) n.failing.delete(name)
    else n.failing.add(name)
    if (n.status === 'running' || n.status === 'paused') {
      this.input(n, { type: 'check', name, passing }, 0)
    }
  }

  partition(groups: ReadonlyMap<string, number>): void {
    for (const n of this.nodes.values()) n.group = groups.get(n.id) ?? 0
    this.log(`PARTITION ${[...this.nodes.values()].map((n) => `${n.id}:${n.group}`).join(' ')}`)
  }

  heal(): void {
    for (const n of this.nodes.values()) n.group = 0
    this.net.lossRate = 0
    this.net.duplicateRate = 0
    this.blockedLinks.clear()
    this.log('HEAL network')
  }

  /** The transport sees a connection close (10-50 ms after a process exits, or a spurious reset). */
  disconnect(observer: string, peer: string, delayMs: number): void {
    const n = this.node(observer)
    if (n.status === 'running' || n.status === 'paused') {
      this.input(n, { type: 'peerDisconnected', id: peer }, delayMs)
    }
  }

  private announceDisconnect(dead: SimNode): void {
    for (const n of this.nodes.values()) {
      if (n === dead || n.group !== dead.group) continue
      this.disconnect(n.id, dead.id, this.rng.range(10, 50))
    }
  }

  node(id: string): SimNode {
    const n = this.nodes.get(id)
    if (n === undefined) throw new Error(`no node ${id}`)
    return n
  }

  holders(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.holding)
  }

  runUntil(t: number, stepBudget = Number.POSITIVE_INFINITY): void {
    while (this.queue.peekTime() <= t && this.steps < stepBudget) {
      const e = this.queue.pop()
      if (e === undefined) break
      this.now = e.at
      this.dispatch(e.item)
    }
    if (this.steps >= stepBudget) this.violation(`step budget ${stepBudget} exhausted (livelock?)`)
    this.now = Math.max(this.now, t)
  }

  private dispatch(e: SimEvent): void {
    if (e.kind === 'script') {
      e.run()
      return
    }
    const n = this.nodes.get(e.kind === 'deliver' ? e.to : e.node)
    if (n === undefined || n.incarnation !== e.incarnation) return
    if (n.status !== 'running' && n.status !== 'paused') return
    let event: ElectionEvent
    if (e.kind === 'deliver') {
      const from = this.nodes.get(e.from)
      const reaches = e.from === HOSTILE_ID || (from !== undefined && from.group === n.group)
      if (!reaches) return
      event = { type: 'message', from: e.from, msg: e.msg }
    } else if (e.kind === 'timer') {
      if (e.token !== n.timerToken) return
      event = { type: 'timer' }
    } else event = e.event
    if (n.status === 'paused') n.pausedInbox.push(event)
    else this.deliverNow(n, event)
  }

  private input(n: SimNode, event: ElectionEvent, delayMs: number): void {
    this.queue.push(this.now + delayMs, { kind: 'input', node: n.id, incarnation: n.incarnation, event })
  }

  private deliverNow(n: SimNode, event: ElectionEvent): void {
    const state = n.state
    if (state === null) return
    this.steps += 1
    const now = this.local(n)
    const r = electionStep(state, event, now)
    n.state = r.state
    if (this.trace !== null) this.log(`${n.id} <- ${describeEvent(event)}  [${describeState(r.state)}]`)
    this.applyAll(n, r.actions)
    this.afterStep(n, now)
  }

  private applyAll(n: SimNode, actions: readonly ElectionAction[]): void {
    for (const a of actions) {
      if (this.trace !== null && a.type !== 'setTimer') this.log(`${n.id} -> ${describeAction(a)}`)
      this.apply(n, a)
    }
  }

  private apply(n: SimNode, a: ElectionAction): void {
    switch (a.type) {
      case 'persist':
        if (!Number.isSafeInteger(a.state.term) || !Number.isSafeInteger(a.state.voters?.version ?? 0)) {
          this.violation(`${n.id} persisted term ${a.state.term}: beyond 2^53-1, no peer accepts its frames`)
        }
        n.disk = a.state
        return
      case 'send':
        if (a.msg.kind === 'voteResponse' && a.msg.granted && !a.msg.preVote) {
          this.recordVote(a.msg.term, a.to, n.id)
        }
        this.transmit(n, a.to, a.msg)
        return
      case 'broadcast':
        for (const id of a.only ?? this.nodes.keys()) if (id !== n.id) this.transmit(n, id, a.msg)
        return
      case 'acquireVip':
        this.onAcquire(n)
        return
      case 'releaseVip':
        if (!n.holding) {
          this.violation(`${n.id} released a VIP it did not hold`)
          return
        }
        n.holding = false
        n.lastHoldStart = n.holdStart
        n.lastHoldEnd = Math.min(this.now, n.holdDeadline)
        this.log(
          `${n.id} VIP released (${a.reason}), held ${n.lastHoldStart.toFixed(1)}..${n.lastHoldEnd.toFixed(1)}`,
        )
        return
      case 'setTimer':
        n.timerToken += 1
        this.queue.push(Math.max(this.now, this.trueTime(n, a.at)), {
          kind: 'timer',
          node: n.id,
          incarnation: n.incarnation,
          token: n.timerToken,
        })
        return
    }
  }

  private transmit(from: SimNode, to: string, msg: ElectionMessage): void {
    if (!Number.isSafeInteger(msg.term)) {
      // the decoder refuses it: the election is frozen
      this.violation(`${from.id} sent ${msg.kind} with term ${msg.term}, which no peer accepts`)
      return
    }
    if (this.hostile) {
      this.overheard.push({ from: from.id, msg })
      if (this.overheard.length > 128) this.overheard.shift()
    }
    const target = this.nodes.get(to)
    if (target === undefined || (target.status !== 'running' && target.status !== 'paused')) return
    if (target.group !== from.group || this.rng.chance(this.net.lossRate)) return
    if (this.blockedLinks.size > 0 && this.blockedLinks.has(`${from.id}>${to}`)) return
    const copies = this.rng.chance(this.net.duplicateRate) ? 2 : 1
    for (let i = 0; i < copies; i++) {
      const spike = this.rng.chance(this.net.spikeRate)
      const delay = spike
        ? this.rng.range(this.net.maxDelayMs, this.net.spikeMaxMs)
        : this.rng.range(this.net.minDelayMs, this.net.maxDelayMs)
      this.queue.push(this.now + delay, {
        kind: 'deliver',
        to,
        incarnation: target.incarnation,
        from: from.id,
        msg,
      })
    }
  }

  private recordVote(term: number, candidate: string, voter: string): void {
    let byCandidate = this.votes.get(term)
    if (byCandidate === undefined) {
      byCandidate = new Map()
      this.votes.set(term, byCandidate)
    }
    let voters = byCandidate.get(candidate)
    if (voters === undefined) {
      voters = new Set()
      byCandidate.set(candidate, voters)
    }
    voters.add(voter)
  }

  private onAcquire(n: SimNode): void {
    const s = n.state
    if (s === null) return
    if (n.holding) this.violation(`${n.id} acquired the VIP twice`)
    n.holding = true
    n.holdStart = this.now
    n.holdDeadline = this.leaseDeadlineTrue(n)
    n.holdTerm = s.term
    this.acquisitions.push({ at: this.now, id: n.id })
    this.log(`${n.id} VIP ACQUIRED term ${s.term}`)
    if (this.config.quorum !== 'majority') return
    const prior = this.termHolders.get(s.term)
    if (prior !== undefined && prior !== n.id) {
      this.violation(`two MASTERs in term ${s.term}: ${prior} and ${n.id}`)
    }
    this.termHolders.set(s.term, n.id)
    const votes = new Set(this.votes.get(s.term)?.get(n.id) ?? [])
    if (s.votedFor === n.id) votes.add(n.id)
    if (s.voters === null || !hasQuorum(s.voters, votes)) {
      this.violation(
        `${n.id} became MASTER in term ${s.term} with votes from {${[...votes].join(',')}} — not a quorum of ${describeVoters(s.voters)}`,
      )
    }
    this.checkOverlap(n)
  }

  private leaseDeadlineTrue(n: SimNode): number {
    const until = n.state === null ? null : vipLeaseUntil(n.state)
    return until === null ? this.now : this.trueTime(n, until)
  }

  private afterStep(n: SimNode, localNow: number): void {
    const s = n.state
    if (s === null || !n.holding) return
    const until = vipLeaseUntil(s)
    if (until === null) {
      this.violation(`${n.id} holds the VIP but is not MASTER`)
      return
    }
    if (localNow >= until) this.violation(`${n.id} kept the VIP past its lease (${localNow} >= ${until})`)
    if (s.term !== n.holdTerm)
      this.violation(`${n.id} moved from term ${n.holdTerm} to ${s.term} while holding the VIP`)
    n.holdDeadline = this.trueTime(n, until)
    if (this.config.quorum === 'majority') this.checkOverlap(n)
  }

  /** Two holders overlap in true time; a current hold counts until its lease deadline. */
  private checkOverlap(n: SimNode): void {
    for (const m of this.nodes.values()) {
      if (m === n) continue
      const start = m.holding ? m.holdStart : m.lastHoldStart
      const end = m.holding ? m.holdDeadline : m.lastHoldEnd
      if (start < n.holdDeadline && n.holdStart < end) {
        this.violation(
          `two VIP holders: ${n.id} (${n.holdStart.toFixed(3)}..${n.holdDeadline.toFixed(3)}) and ${m.id} (${start.toFixed(3)}..${end.toFixed(3)}, ${m.status})`,
        )
      }
    }
  }

  /** The most recent voter configuration any live node knows. */
  latestVoters(): VoterConfig | null {
    let best: VoterConfig | null = null
    for (const n of this.nodes.values()) {
      const v = n.state?.voters ?? null
      if (v !== null && (best === null || compareConfigIds(v, best) > 0)) best = v
    }
    return best
  }

  /** The node that should be MASTER once stable: the best eligible running voter. */
  bestEligible(candidates: readonly SimNode[]): SimNode | null {
    let best: SimNode | null = null
    let bestPriority = 0
    for (const n of candidates) {
      const p = effectivePriority(n.priority, n.checks, n.failing)
      if (!p.eligible) continue
      if (best === null || outranks(p.priority, n.id, bestPriority, best.id)) {
        best = n
        bestPriority = p.priority
      }
    }
    return best
  }
}

function describeVoters(v: VoterConfig | null): string {
  if (v === null) return 'no voters'
  const prev = v.prev === null ? '' : ` joint with {${v.prev.join(',')}}`
  return `{${v.voters.join(',')}}${prev} (cfg ${v.term}.${v.version})`
}

function describeState(s: ElectionState): string {
  const promise = s.promise === null ? '' : ` promise ${s.promise.to}<${s.promise.until.toFixed(1)}`
  const lease = s.lead === null ? '' : ` lease<${s.lead.leaseUntil.toFixed(1)}`
  return `${s.role} t${s.term}${s.votedFor === null ? '' : ` voted ${s.votedFor}`}${promise}${lease} cfg ${describeVoters(s.voters)}`
}

function describeEvent(e: ElectionEvent): string {
  switch (e.type) {
    case 'message':
      return `${e.from}: ${describeMessage(e.msg)}`
    case 'peerDisconnected':
      return `peerDisconnected ${e.id}`
    case 'members':
      return `members ${e.ids.join(',')}`
    case 'check':
      return `check ${e.name} ${e.passing ? 'passing' : 'FAILING'}`
    default:
      return e.type
  }
}

function describeMessage(m: ElectionMessage): string {
  switch (m.kind) {
    case 'status':
      return `status t${m.term} prio ${m.effectivePriority}${m.eligible ? '' : ' FAULT'}${m.holder ? ' holder' : ''}`
    case 'voteRequest':
      return `${m.preVote ? 'preVote' : 'vote'}Request t${m.term} prio ${m.effectivePriority}`
    case 'voteResponse':
      return `${m.preVote ? 'preVote' : 'vote'}Response t${m.term} ${m.granted ? 'GRANTED' : 'rejected'}`
    case 'lease':
      return `lease t${m.term} sentAt ${m.sentAt.toFixed(1)} cfg ${describeVoters(m.config)}`
    case 'leaseAck':
      return `leaseAck t${m.term} ${m.ok ? 'ok' : 'REFUSED'} sentAt ${m.sentAt.toFixed(1)}`
    case 'release':
      return `release t${m.term}${m.successor === null ? '' : ` to ${m.successor}`}`
  }
}

function describeAction(a: ElectionAction): string {
  switch (a.type) {
    case 'send':
      return `${a.to}: ${describeMessage(a.msg)}`
    case 'broadcast':
      return `${a.only === undefined ? 'all' : a.only.join(',')}: ${describeMessage(a.msg)}`
    case 'persist':
      return `persist t${a.state.term} voted ${a.state.votedFor ?? '-'}`
    case 'acquireVip':
      return `ACQUIRE VIP lease<${a.leaseUntil.toFixed(1)}`
    case 'releaseVip':
      return `RELEASE VIP (${a.reason})`
    case 'setTimer':
      return `timer ${a.at.toFixed(1)}`
  }
}
