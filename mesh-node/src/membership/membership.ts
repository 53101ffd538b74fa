import type {
  Heartbeat,
  Leave,
  MemberState,
  MembershipTimings,
  MemberView,
  RemovedMember,
} from '@pgmesh/protocol'

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
  /** from the member's heartbeats: set while an operator has it in maintenance */
  readonly maintenance: MaintenanceInfo | null
  readonly state: MemberState
  /** monotonic ms when the member entered `state` */
  readonly stateSince: number
  /** monotonic ms of the last accepted heartbeat */
  readonly lastHeard: number
  /** monotonic ms of the first heartbeat heard from this member (this peer id) */
  readonly firstHeard: number
  /**
   * heard in heartbeats at least `heartbeatIntervalMs` apart: not a single message that named an id.
   * Only confirmed members are redialled, and unconfirmed ones are capped (MAX_PENDING_MEMBERS)
   */
  readonly confirmed: boolean
}

/**
 * The most members a node keeps. A new id beyond it replaces a silent (dead or left) member,
 * unconfirmed ones and those heard longest ago first; with none silent it is refused.
 */
export const MAX_MEMBERS = 2048
/**
 * The most unconfirmed, not yet dead members at once: one message can invent an id, and a peer
 * holding the secret can sign messages under many peer ids, so new ids beyond this are refused.
 * Large enough that hundreds of nodes starting at once, or a healed partition, are admitted within
 * a heartbeat (a member is confirmed by its second heartbeat).
 */
export const MAX_PENDING_MEMBERS = 256
/** Default for `redialTargets`: the most members the repair loop dials in one round. */
export const MAX_REDIALS_PER_ROUND = 8

export interface MaintenanceInfo {
  readonly reason: string | null
  /** wall clock (ms since the epoch) when maintenance began, as the member reports it */
  readonly since: number
}

/** An operator removed the member: every incarnation up to `incarnation` is gone. */
export interface Removal {
  readonly incarnation: number
  /** monotonic ms of the removal on this node's clock (earlier than when it heard of it) */
  readonly at: number
}

export interface MembershipState {
  readonly selfId: string
  readonly members: ReadonlyMap<string, MemberRecord>
  /** removals remembered (and relayed) for `leftRetentionMs`, so a dead member does not come back */
  readonly removed: ReadonlyMap<string, Removal>
}

export type MembershipEvent =
  | { readonly type: 'heartbeat'; readonly msg: Heartbeat }
  | { readonly type: 'leave'; readonly msg: Leave }
  /** the transport lost every connection to this peer: a fast hint, confirmed or cleared by heartbeats */
  | { readonly type: 'peerDisconnected'; readonly peerId: string }
  /**
   * an operator removed a member (here or on the node that relays it): it no longer counts
   * anywhere. `incarnation` defaults to the one this node knows; `ageMs` is how long ago it happened.
   */
  | {
      readonly type: 'remove'
      readonly id: string
      readonly incarnation?: number
      readonly ageMs?: number
    }
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
  /**
   * a heartbeat naming a new member id was not admitted (count it as a drop): its peer id already
   * speaks for a live member, too many members are unconfirmed, or the table is full
   */
  | {
      readonly type: 'refused'
      readonly id: string
      readonly peerId: string
      readonly reason: 'peerIdInUse' | 'tooManyPending' | 'full'
    }

export interface StepResult {
  readonly state: MembershipState
  readonly changes: readonly MembershipChange[]
}

export function initialMembership(selfId: string): MembershipState {
  return { selfId, members: new Map(), removed: new Map() }
}

export function membershipStep(
  state: MembershipState,
  event: MembershipEvent,
  now: number,
  timings: MembershipTimings,
): StepResult {
  switch (event.type) {
    case 'heartbeat':
      return onHeartbeat(state, event.msg, now, timings)
    case 'leave':
      return onLeave(state, event.msg, now)
    case 'peerDisconnected':
      return onPeerDisconnected(state, event.peerId, now)
    case 'remove':
      return onRemove(state, event, now, timings)
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

function onHeartbeat(before: MembershipState, hb: Heartbeat, now: number, t: MembershipTimings): StepResult {
  if (hb.node === before.selfId)
    return { state: before, changes: [{ type: 'idConflict', id: hb.node, peerId: hb.peerId }] }
  let state = before
  const removal = state.removed.get(hb.node)
  if (removal !== undefined) {
    // a removed member may rejoin, but only as a new incarnation (a restart)
    if (hb.incarnation <= removal.incarnation) return unchanged(state)
    const removed = new Map(state.removed)
    removed.delete(hb.node)
    state = { ...state, removed }
  }
  const prev = state.members.get(hb.node)
  if (prev === undefined) {
    const admitted = admit(state, hb)
    if (admitted.reason !== null) {
      const refused: MembershipChange = {
        type: 'refused',
        id: hb.node,
        peerId: hb.peerId,
        reason: admitted.reason,
      }
      return { state: before, changes: [refused] }
    }
    state = admitted.state
  } else {
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
    maintenance: hb.maintenance ?? null,
    state: 'alive',
    stateSince: prev !== undefined && prev.state === 'alive' ? prev.stateSince : now,
    lastHeard: now,
    ...confirmation(prev, hb, now, t),
  }
  const changes: MembershipChange[] =
    prev === undefined
      ? [{ type: 'state', id: rec.id, from: null, to: 'alive', incarnation: rec.incarnation }]
      : prev.state !== 'alive' || prev.incarnation !== rec.incarnation
        ? [{ type: 'state', id: rec.id, from: prev.state, to: 'alive', incarnation: rec.incarnation }]
        : []
  return { state: withMember(state, rec), changes }
}

/** A restart keeps the peer id (its key is persisted), and with it what the member has shown. */
function confirmation(
  prev: MemberRecord | undefined,
  hb: Heartbeat,
  now: number,
  t: MembershipTimings,
): Pick<MemberRecord, 'firstHeard' | 'confirmed'> {
  if (prev === undefined || prev.peerId !== hb.peerId) return { firstHeard: now, confirmed: false }
  return {
    firstHeard: prev.firstHeard,
    confirmed: prev.confirmed || now - prev.firstHeard >= t.heartbeatIntervalMs,
  }
}

/** Whether a new member id may enter the table (it may first push out an unconfirmed dead one). */
function admit(
  state: MembershipState,
  hb: Heartbeat,
): { state: MembershipState; reason: null } | { reason: 'peerIdInUse' | 'tooManyPending' | 'full' } {
  let pending = 0
  // when full: the unconfirmed silent member heard longest ago, else the silent one heard longest ago
  let evict: MemberRecord | null = null
  const before = (a: MemberRecord, b: MemberRecord | null) =>
    b === null || (a.confirmed === b.confirmed ? a.lastHeard < b.lastHeard : !a.confirmed)
  for (const rec of state.members.values()) {
    const live = rec.state === 'alive' || rec.state === 'suspect'
    if (live && rec.peerId === hb.peerId) return { reason: 'peerIdInUse' }
    if (!rec.confirmed && live) pending++
    if (!live && before(rec, evict)) evict = rec
  }
  if (pending >= MAX_PENDING_MEMBERS) return { reason: 'tooManyPending' }
  if (state.members.size < MAX_MEMBERS) return { state, reason: null }
  if (evict === null) return { reason: 'full' }
  const members = new Map(state.members)
  members.delete(evict.id)
  return { state: { ...state, members }, reason: null }
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

/**
 * Forgets the member and remembers the removal. A member this node still hears from (alive, or
 * suspect: one closed connection makes it so) stays, whatever incarnation a removal names, and the
 * removal is not remembered (it would hide the member's next heartbeats): a relayed removal must
 * never evict a live MASTER. One it holds dead or left goes whatever its incarnation, and a removal
 * made on a node that never heard of the member still applies.
 */
function onRemove(
  state: MembershipState,
  e: { readonly id: string; readonly incarnation?: number; readonly ageMs?: number },
  now: number,
  t: MembershipTimings,
): StepResult {
  const ageMs = e.ageMs ?? 0
  if (e.id === state.selfId || ageMs >= t.leftRetentionMs) return unchanged(state)
  const rec = state.members.get(e.id)
  const known = state.removed.get(e.id)
  const incarnation = Math.max(known?.incarnation ?? 0, e.incarnation ?? rec?.incarnation ?? 0)
  const at = Math.min(known?.at ?? Number.POSITIVE_INFINITY, now - ageMs)
  const gone = rec !== undefined && (rec.state === 'dead' || rec.state === 'left')
  // we hear from it (it may have restarted since): the removal does not apply here
  if (rec !== undefined && !gone) return unchanged(state)
  if (known !== undefined && known.incarnation === incarnation && known.at === at && !gone) {
    return unchanged(state)
  }
  const removed = new Map(state.removed)
  removed.set(e.id, { incarnation, at })
  let members = state.members
  if (gone) {
    const m = new Map(state.members)
    m.delete(e.id)
    members = m
  }
  const changes: MembershipChange[] =
    known === undefined || gone ? [{ type: 'removed', id: e.id, reason: 'operator' }] : []
  return { state: { ...state, members, removed }, changes }
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
  let removed: Map<string, Removal> | null = null
  for (const [id, r] of state.removed) {
    if (now - r.at < t.leftRetentionMs) continue
    removed ??= new Map(state.removed)
    removed.delete(id)
  }
  if (members === null && removed === null) return unchanged(state)
  return {
    state: { ...state, members: members ?? state.members, removed: removed ?? state.removed },
    changes,
  }
}

/** The removals to relay in a heartbeat (at most `max`, the most recent first). */
export function removalsToGossip(
  state: MembershipState,
  now: number,
  max = 64,
): { node: string; incarnation: number; ageMs: number }[] {
  return [...state.removed]
    .map(([node, r]) => ({ node, incarnation: r.incarnation, ageMs: Math.max(0, Math.round(now - r.at)) }))
    .sort((a, b) => a.ageMs - b.ageMs)
    .slice(0, max)
}

/**
 * Whom the mesh-repair loop should redial this round: confirmed members gone silent (suspect or
 * dead), the most recently heard first, one per peer id, at most `max`. Members only named once
 * are never dialled: a peer must not be able to point every node at addresses of its choosing.
 */
export function redialTargets(
  state: MembershipState,
  max = MAX_REDIALS_PER_ROUND,
): { id: string; peerId: string; addrs: readonly string[] }[] {
  const silent = [...state.members.values()]
    .filter((r) => r.confirmed && (r.state === 'suspect' || r.state === 'dead'))
    .sort((a, b) => b.lastHeard - a.lastHeard || (a.id < b.id ? -1 : 1))
  const out: { id: string; peerId: string; addrs: readonly string[] }[] = []
  const peers = new Set<string>()
  for (const r of silent) {
    if (out.length >= max) break
    if (peers.has(r.peerId)) continue
    peers.add(r.peerId)
    out.push({ id: r.id, peerId: r.peerId, addrs: r.addrs })
  }
  return out
}

/**
 * Confirmed, alive members this node has no connection to, by id, at most `max`. A member is
 * dialled when it comes alive; a dial that failed then (a busy host, a slow handshake) would not be
 * tried again while its heartbeats keep arriving through other peers, and the election, whose frames
 * travel only over direct connections, would never hear from it.
 */
export function unconnectedMembers(
  state: MembershipState,
  isConnected: (peerId: string) => boolean,
  max = MAX_REDIALS_PER_ROUND,
): { id: string; peerId: string; addrs: readonly string[] }[] {
  const out: { id: string; peerId: string; addrs: readonly string[] }[] = []
  const ids = [...state.members.keys()].sort()
  for (const id of ids) {
    if (out.length >= max) break
    const r = state.members.get(id)
    if (r === undefined || !r.confirmed || r.state !== 'alive' || isConnected(r.peerId)) continue
    out.push({ id: r.id, peerId: r.peerId, addrs: r.addrs })
  }
  return out
}

/** The API view of the removals this node remembers. */
export function removedViews(state: MembershipState, now: number, wallNow: number): RemovedMember[] {
  return [...state.removed]
    .map(([id, r]) => ({
      id,
      incarnation: r.incarnation,
      removedAt: new Date(wallNow - (now - r.at)).toISOString(),
    }))
    .sort((a, b) => a.id.localeCompare(b.id))
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
  readonly maintenance: MaintenanceInfo | null
}

function maintenanceView(m: MaintenanceInfo | null): MemberView['maintenance'] {
  return m === null ? null : { reason: m.reason, since: new Date(m.since).toISOString() }
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
      maintenance: maintenanceView(self.maintenance),
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
      maintenance: maintenanceView(r.maintenance),
      election: r.election,
    })
  }
  return views.sort((a, b) => a.id.localeCompare(b.id))
}
