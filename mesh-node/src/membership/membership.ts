import type { Heartbeat, Leave, MemberState, MembershipTimings, MemberView } from '@pgmesh/protocol'

/**
 * Membership as a pure state machine: `step(state, event, now, timings) → { state, changes }`.
 * Liveness comes from heartbeats carried in the gossip itself (a partition sends no RST, and
 * non-neighbours never see a disconnect), measured on the receiver's monotonic clock.
 */

export interface MemberRecord {
  readonly id: string
  readonly peerId: string
  readonly incarnation: number
  readonly seq: number
  readonly priority: number
  readonly addrs: readonly string[]
  readonly api: string | null
  readonly configVersion: number
  readonly election: MemberView['election']
  readonly state: MemberState
  /** monotonic ms when the member entered `state` */
  readonly stateSince: number
  /** monotonic ms of the last accepted heartbeat */
  readonly lastHeard: number
}

export interface MembershipState {
  readonly selfId: string
  readonly members: ReadonlyMap<string, MemberRecord>
}

export type MembershipEvent =
  | { readonly type: 'heartbeat'; readonly msg: Heartbeat }
  | { readonly type: 'leave'; readonly msg: Leave }
  /** the transport lost every connection to this peer: a fast hint, confirmed or cleared by heartbeats */
  | { readonly type: 'peerDisconnected'; readonly peerId: string }
  /** an operator removes a member (it no longer counts anywhere) */
  | { readonly type: 'remove'; readonly id: string }
  | { readonly type: 'tick' }

export type MembershipChange =
  | {
      readonly type: 'state'
      readonly id: string
      readonly from: MemberState | null
      readonly to: MemberState
      readonly incarnation: number
    }
  | { readonly type: 'removed'; readonly id: string; readonly reason: 'operator' | 'left-expired' }
  /** another process claims our node id: a misconfiguration the operator must fix */
  | { readonly type: 'idConflict'; readonly id: string; readonly peerId: string }

export interface StepResult {
  readonly state: MembershipState
  readonly changes: readonly MembershipChange[]
}

export function initialMembership(selfId: string): MembershipState {
  return { selfId, members: new Map() }
}

export function membershipStep(
  state: MembershipState,
  event: MembershipEvent,
  now: number,
  timings: MembershipTimings,
): StepResult {
  switch (event.type) {
    case 'heartbeat':
      return onHeartbeat(state, event.msg, now)
    case 'leave':
      return onLeave(state, event.msg, now)
    case 'peerDisconnected':
      return onPeerDisconnected(state, event.peerId, now)
    case 'remove':
      return onRemove(state, event.id)
    case 'tick':
      return onTick(state, now, timings)
  }
}

const unchanged = (state: MembershipState): StepResult => ({ state, changes: [] })

function withMember(state: MembershipState, rec: MemberRecord): MembershipState {
  const members = new Map(state.members)
  members.set(rec.id, rec)
  return { ...state, members }
}

function transition(rec: MemberRecord, to: MemberState): MembershipChange {
  return { type: 'state', id: rec.id, from: rec.state, to, incarnation: rec.incarnation }
}

function onHeartbeat(state: MembershipState, hb: Heartbeat, now: number): StepResult {
  if (hb.node === state.selfId)
    return { state, changes: [{ type: 'idConflict', id: hb.node, peerId: hb.peerId }] }
  const prev = state.members.get(hb.node)
  if (prev !== undefined) {
    if (hb.incarnation < prev.incarnation) return unchanged(state)
    if (hb.incarnation === prev.incarnation) {
      // a late heartbeat must not resurrect a member that said goodbye, nor reorder its own history
      if (prev.state === 'left' || hb.seq <= prev.seq) return unchanged(state)
    }
  }
  const rec: MemberRecord = {
    id: hb.node,
    peerId: hb.peerId,
    incarnation: hb.incarnation,
    seq: hb.seq,
    priority: hb.priority,
    addrs: hb.addrs,
    api: hb.api,
    configVersion: hb.configVersion,
    election: hb.election ?? null,
    state: 'alive',
    stateSince: prev !== undefined && prev.state === 'alive' ? prev.stateSince : now,
    lastHeard: now,
  }
  const changes: MembershipChange[] =
    prev === undefined
      ? [{ type: 'state', id: rec.id, from: null, to: 'alive', incarnation: rec.incarnation }]
      : prev.state !== 'alive' || prev.incarnation !== rec.incarnation
        ? [{ type: 'state', id: rec.id, from: prev.state, to: 'alive', incarnation: rec.incarnation }]
        : []
  return { state: withMember(state, rec), changes }
}

function onLeave(state: MembershipState, msg: Leave, now: number): StepResult {
  const prev = state.members.get(msg.node)
  if (prev === undefined || msg.incarnation < prev.incarnation || prev.state === 'left')
    return unchanged(state)
  if (prev.peerId !== msg.peerId) return unchanged(state)
  const rec: MemberRecord = { ...prev, incarnation: msg.incarnation, state: 'left', stateSince: now }
  return { state: withMember(state, rec), changes: [transition(prev, 'left')] }
}

function onPeerDisconnected(state: MembershipState, peerId: string, now: number): StepResult {
  for (const rec of state.members.values()) {
    if (rec.peerId === peerId && rec.state === 'alive') {
      return {
        state: withMember(state, { ...rec, state: 'suspect', stateSince: now }),
        changes: [transition(rec, 'suspect')],
      }
    }
  }
  return unchanged(state)
}

function onRemove(state: MembershipState, id: string): StepResult {
  if (!state.members.has(id)) return unchanged(state)
  const members = new Map(state.members)
  members.delete(id)
  return { state: { ...state, members }, changes: [{ type: 'removed', id, reason: 'operator' }] }
}

function onTick(state: MembershipState, now: number, t: MembershipTimings): StepResult {
  const changes: MembershipChange[] = []
  let members: Map<string, MemberRecord> | null = null
  const edit = () => {
    members ??= new Map(state.members)
    return members
  }
  for (const rec of state.members.values()) {
    const silentFor = now - rec.lastHeard
    if (rec.state === 'left') {
      if (now - rec.stateSince >= t.leftRetentionMs) {
        edit().delete(rec.id)
        changes.push({ type: 'removed', id: rec.id, reason: 'left-expired' })
      }
      continue
    }
    const due: MemberState =
      silentFor >= t.deadTimeoutMs ? 'dead' : silentFor >= t.suspectTimeoutMs ? 'suspect' : rec.state
    // time only ever worsens a state; only a heartbeat makes a member alive again
    if (due !== rec.state && rank(due) > rank(rec.state)) {
      edit().set(rec.id, { ...rec, state: due, stateSince: now })
      changes.push(transition(rec, due))
    }
  }
  return members === null ? unchanged(state) : { state: { ...state, members }, changes }
}

function rank(s: MemberState): number {
  return s === 'alive' ? 0 : s === 'suspect' ? 1 : s === 'dead' ? 2 : 3
}

export interface SelfInfo {
  readonly peerId: string
  readonly incarnation: number
  readonly priority: number
  readonly addrs: readonly string[]
  readonly api: string | null
  readonly configVersion: number
  readonly startedAt: number
  readonly election: MemberView['election']
}

/**
 * Renders the API view. `now`/`wallNow` are the monotonic and wall clocks at render time; wall-clock
 * times are derived from them so the view never mixes clocks.
 */
export function memberViews(
  state: MembershipState,
  self: SelfInfo,
  now: number,
  wallNow: number,
): MemberView[] {
  const iso = (mono: number) => new Date(wallNow - (now - mono)).toISOString()
  const views: MemberView[] = [
    {
      id: state.selfId,
      peerId: self.peerId,
      self: true,
      state: 'alive',
      priority: self.priority,
      incarnation: self.incarnation,
      addrs: [...self.addrs],
      api: self.api,
      lastHeardAt: null,
      lastHeardAgoMs: null,
      stateSince: iso(self.startedAt),
      configVersion: self.configVersion,
      election: self.election,
    },
  ]
  for (const r of state.members.values()) {
    views.push({
      id: r.id,
      peerId: r.peerId,
      self: false,
      state: r.state,
      priority: r.priority,
      incarnation: r.incarnation,
      addrs: [...r.addrs],
      api: r.api,
      lastHeardAt: iso(r.lastHeard),
      lastHeardAgoMs: Math.max(0, Math.round(now - r.lastHeard)),
      stateSince: iso(r.stateSince),
      configVersion: r.configVersion,
      election: r.election,
    })
  }
  return views.sort((a, b) => a.id.localeCompare(b.id))
}
