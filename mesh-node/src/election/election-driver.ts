import type { ElectionMessage, ElectionView, VipConfig } from '@pgmesh/protocol'
import type { Logger } from '../log.js'
import type { VipDriver, VipState } from '../vip/vip-driver.js'
import type { ElectionStore } from './election-store.js'
import {
  electionRefusals,
  electionStatus,
  electionStep,
  initElection,
  knownMaster,
  vipLeaseUntil,
} from './machine.js'
import type { ElectionAction, ElectionEvent, ElectionOptions, ElectionState, ReleaseReason } from './types.js'

/** Peers' frames waiting for the step beyond this are dropped: the inbound queue is bounded. */
export const MAX_QUEUED_FRAMES = 1024

/** Releases made by choice, with the lease still running: the VIP's sessions may end first. */
const QUIESCED_RELEASES: ReadonlySet<ReleaseReason> = new Set(['preempted', 'maintenance', 'shutdown'])
/** Left of the lease for the address removal itself once a quiesce ends. */
const RELEASE_COMMAND_MARGIN_MS = 30
/**
 * The weight-0 check a MASTER fails when it cannot acquire the VIP (`vip.acquireAttempts` in a
 * row): it goes FAULT and hands over. Not a valid user check name, so it never clashes with one.
 */
export const VIP_FAULT_CHECK = 'pgmesh:vip'

/** Told every change of this node's lease: until when (the driver's `now` clock) it may serve on the VIP. */
export interface LeaseObserver {
  lease(until: number | null): void
}

export interface ElectionDriverDeps {
  readonly options: ElectionOptions
  /** the founding voters (the same list on every founding node), or null to wait for a MASTER */
  readonly initialVoters: readonly string[] | null
  readonly store: ElectionStore
  readonly vip: VipDriver
  readonly vipConfig: VipConfig
  readonly send: (to: string, msg: ElectionMessage) => void
  /** to every member, or to the members in `only` */
  readonly broadcast: (msg: ElectionMessage, only?: readonly string[]) => void
  /** monotonic ms */
  readonly now: () => number
  readonly logger: Logger
  /** the node's election view changed (role, term, MASTER, eligibility): a moment to gossip it */
  readonly onChange?: () => void
  /** the wake-up timer on the same monotonic scale as `now` (Node's timers when absent) */
  readonly after?: (ms: number, fn: () => void) => { cancel(): void }
  /** told every lease change, after the VIP driver (the proxy's lease gate, say) */
  readonly leaseObservers?: readonly LeaseObserver[]
}

const nodeTimer = (ms: number, fn: () => void) => {
  const t = setTimeout(fn, ms)
  return { cancel: () => clearTimeout(t) }
}

/**
 * Runs the pure election machine against the real world: one event at a time, its actions in
 * order, each finished before the next (a VIP is removed before the `release` that lets another
 * node take it is sent; a vote is on disk before it is sent), one wake-up timer.
 */
export class ElectionDriver {
  readonly #d: ElectionDriverDeps
  readonly #log: Logger
  #state: ElectionState | null = null
  readonly #queue: ElectionEvent[] = []
  #queueDrops = 0
  #draining: Promise<void> | null = null
  #timer: { cancel(): void } | null = null
  #entered: VipState | null = null
  #stopped = false
  #masterChanges = 0
  #lastLeader: string | null = null
  #options: ElectionOptions
  #vipConfig: VipConfig
  /** the lease last reported to the VIP driver and the observers */
  #reportedLease: number | null = null
  /** failed acquires in a row in this MASTER term, and the pending retry */
  #acquireFailures = 0
  #retry: NodeJS.Timeout | null = null
  #faultTimer: NodeJS.Timeout | null = null

  constructor(deps: ElectionDriverDeps) {
    this.#d = deps
    this.#options = withVipCheck(deps.options)
    this.#vipConfig = deps.vipConfig
    this.#log = deps.logger.child({ component: 'election' })
    deps.vip.onLost?.((reason) => {
      if (this.#entered !== 'MASTER' || this.#stopped) return
      this.#log.error(
        { code: 'VIP_ADDRESS_LOST', reason },
        'the VIP was lost while MASTER; acquiring it again',
      )
      this.#acquireFailed(new Error(reason))
    })
  }

  /**
   * Loads the persisted term and vote, removes a VIP a killed predecessor left behind, and starts
   * the machine with every check counted as failing until it reports (`failing`).
   */
  async start(failing: Iterable<string>, seed: number): Promise<void> {
    const loaded = await this.#d.store.load()
    if (!loaded.ok) throw new Error(`${loaded.error.code}: ${loaded.error.message}`)
    await this.#d.vip.start()
    const r = initElection({
      opts: this.#options,
      now: this.#d.now(),
      seed,
      persisted: loaded.value,
      initialVoters: loaded.value?.voters != null ? null : this.#d.initialVoters,
    })
    this.#state = r.state
    const c = this.#options.config
    this.#log.info(
      {
        term: r.state.term,
        voters: r.state.voters?.voters ?? null,
        quorum: c.quorum,
        priority: this.#options.priority,
        leaseMs: c.leaseMs,
        heartbeatIntervalMs: c.heartbeatIntervalMs,
      },
      r.state.voters === null
        ? 'election started; waiting for a MASTER to add this node'
        : 'election started',
    )
    // checks start failing; results (and messages) that arrived while we loaded come after
    this.#queue.unshift(...[...failing].map((name) => ({ type: 'check' as const, name, passing: false })))
    await this.#run(r.actions)
    this.#kick()
    await this.#draining
  }

  /**
   * Queues an event; events that arrive before start() finished loading are kept for it. Peers'
   * frames beyond MAX_QUEUED_FRAMES waiting are dropped and counted (they repeat: renewals,
   * statuses, retried votes); this node's own events always queue.
   */
  deliver(event: ElectionEvent): void {
    if (this.#stopped) return
    if ((event.type === 'message' || event.type === 'report') && this.#queue.length >= MAX_QUEUED_FRAMES) {
      this.#queueDrops++
      return
    }
    this.#queue.push(event)
    if (this.#state !== null) this.#kick()
  }

  /**
   * A cluster config edit: checks, priorities' weights and timings apply from the next step (the
   * quorum mode stays what the node started with); `vipConfig` is what the view shows.
   */
  reconfigure(options: ElectionOptions, vipConfig: VipConfig): void {
    const quorum = this.#options.config.quorum
    this.#options = withVipCheck({ ...options, config: { ...options.config, quorum } })
    this.#vipConfig = vipConfig
    const c = this.#options.config
    this.#log.info(
      {
        checks: this.#options.checks.map((x) => `${x.name}:${x.weight}`),
        leaseMs: c.leaseMs,
        heartbeatIntervalMs: c.heartbeatIntervalMs,
        electionTimeoutMs: [c.electionTimeoutMinMs, c.electionTimeoutMaxMs],
        vip: vipConfig.address?.cidr ?? null,
      },
      'election settings applied',
    )
    this.deliver({ type: 'options', opts: this.#options })
  }

  /** Graceful stop: the VIP is released and the others told at once (Keepalived's priority-0 advert). */
  async stop(): Promise<void> {
    if (this.#stopped) return
    if (this.#state !== null) {
      this.#queue.push({ type: 'shutdown' })
      this.#kick()
      await this.#draining
    }
    this.#stopped = true
    this.#timer?.cancel()
    this.#timer = null
    this.#clearRetry()
    if (this.#faultTimer !== null) clearTimeout(this.#faultTimer)
    this.#faultTimer = null
    await this.#enter('STOP')
    await this.#d.vip.stop()
  }

  /** Resolves once every event delivered so far has been handled (and its VIP change made). */
  async settled(): Promise<void> {
    while (this.#draining !== null) await this.#draining
  }

  /** A connection to a peer came (back) up: if MASTER, re-announce the VIP so switches relearn it. */
  peerReconnected(): void {
    if (this.#entered === 'MASTER') this.#d.vip.announce()
  }

  get started(): boolean {
    return this.#state !== null
  }

  /** The fields this node's heartbeats carry. */
  summary(failingChecks: readonly string[]) {
    const s = this.#state
    if (s === null) return undefined
    const st = electionStatus(s)
    return {
      term: st.term,
      effectivePriority: st.effectivePriority,
      eligible: st.eligible,
      holder: st.holder,
      leader: st.leader,
      failingChecks: [...failingChecks],
      config: st.config,
    }
  }

  view(): Omit<ElectionView, 'vipHolders' | 'checks'> {
    const s = this.#state
    const c = this.#options.config
    const vip = {
      address: this.#vipConfig.address?.cidr ?? null,
      driver: this.#d.vip.kind,
      held: this.#d.vip.holds(),
    }
    if (s === null) {
      return {
        quorum: c.quorum,
        state: 'BACKUP',
        role: 'starting',
        term: 0,
        master: null,
        vip,
        leaseRemainingMs: null,
        priority: this.#options.priority,
        effectivePriority: this.#options.priority,
        eligible: false,
        failingChecks: [],
        voters: null,
        masterChanges: 0,
      }
    }
    const st = electionStatus(s)
    const until = vipLeaseUntil(s)
    return {
      quorum: c.quorum,
      state: this.#vrrpState(s),
      role: s.role,
      term: s.term,
      master: knownMaster(s),
      vip,
      leaseRemainingMs: until === null ? null : Math.max(0, Math.round(until - this.#d.now())),
      priority: this.#options.priority,
      effectivePriority: st.effectivePriority,
      eligible: st.eligible,
      failingChecks: [...s.failingChecks].sort(),
      voters: s.voters === null ? null : { voters: [...s.voters.voters], prev: s.voters.prev },
      masterChanges: this.#masterChanges,
    }
  }

  /** peers' frames dropped because the inbound queue was full (a flood, or a stalled step) */
  queueDrops(): number {
    return this.#queueDrops
  }

  /** frames the election step refused so far (terms out of bounds, non-voters' claims) */
  refusedFrames(): number {
    return this.#state === null ? 0 : electionRefusals(this.#state)
  }

  isMaster(): boolean {
    const s = this.#state
    if (s === null) return false
    const until = vipLeaseUntil(s)
    return until !== null && until > this.#d.now()
  }

  /** Holds an unexpired lease AND the VIP driver holds the address: what `GET /master` answers 200 for. */
  servesVip(): boolean {
    return this.isMaster() && this.#d.vip.holds()
  }

  // ---- internals

  #kick(): void {
    if (this.#draining !== null) return
    this.#draining = this.#drain().finally(() => {
      this.#draining = null
      if (this.#queue.length > 0 && !this.#stopped) this.#kick()
    })
  }

  async #drain(): Promise<void> {
    for (;;) {
      const event = this.#queue.shift()
      const s = this.#state
      if (event === undefined || s === null) return
      const before = electionStatus(s)
      const leaseUntil = vipLeaseUntil(s)
      const r = electionStep(s, event, this.#d.now())
      this.#state = r.state
      await this.#run(r.actions, leaseUntil)
      // renewals change the lease without an action; a release reports null once the address is gone
      this.#reportLease(vipLeaseUntil(r.state))
      const after = electionStatus(r.state)
      this.#noteChanges(before, after, r.state)
    }
  }

  /** `leaseUntil`: the lease this node held before the step (a hand-over may use what is left of it) */
  async #run(actions: readonly ElectionAction[], leaseUntil: number | null = null): Promise<void> {
    for (const a of actions) {
      switch (a.type) {
        case 'persist':
          try {
            await this.#d.store.save(a.state)
          } catch (e) {
            // a vote that is not on disk must not be sent: stop acting on this step
            this.#log.error(
              { err: (e as Error).message },
              'cannot persist the election state; actions dropped',
            )
            return
          }
          break
        case 'send':
          this.#d.send(a.to, a.msg)
          break
        case 'broadcast':
          this.#d.broadcast(a.msg, a.only)
          break
        case 'acquireVip':
          this.#masterChanges++
          this.#log.info(
            { term: this.#state?.term, vip: this.#vipConfig.address?.cidr ?? null },
            'became MASTER; acquiring the VIP',
          )
          this.#acquireFailures = 0
          this.#reportLease(a.leaseUntil)
          await this.#enter('MASTER')
          break
        case 'releaseVip': {
          await this.#quiesce(a.reason, leaseUntil)
          const s = this.#state
          const next: VipState =
            a.reason === 'shutdown' || s === null ? 'STOP' : electionStatus(s).eligible ? 'BACKUP' : 'FAULT'
          this.#log.info({ reason: a.reason, term: s?.term }, `releasing the VIP (${a.reason})`)
          await this.#enter(next)
          break
        }
        case 'setTimer':
          this.#arm(a.at)
          break
      }
    }
  }

  /**
   * An orderly hand-over (preempted, maintenance, shutdown) first lets the VIP's sessions end with
   * new connections held off, but only within the lease this node still holds: no other node can
   * take the VIP before that lease ends, and the `release` that lets one take it sooner is sent
   * after the address is gone. A lost lease or a higher term never waits.
   */
  async #quiesce(reason: ReleaseReason, leaseUntil: number | null): Promise<void> {
    const quiesce = this.#d.vip.quiesce
    if (quiesce === undefined || leaseUntil === null || !QUIESCED_RELEASES.has(reason)) return
    const budget = Math.floor(leaseUntil - this.#d.now() - RELEASE_COMMAND_MARGIN_MS)
    if (budget <= 0) return
    try {
      await quiesce.call(this.#d.vip, AbortSignal.timeout(budget))
    } catch (e) {
      this.#log.warn({ err: (e as Error).message }, 'could not quiesce the VIP; releasing it at once')
    }
  }

  #arm(at: number): void {
    this.#timer?.cancel()
    if (this.#stopped) return
    this.#timer = (this.#d.after ?? nodeTimer)(Math.max(0, Math.ceil(at - this.#d.now())), () => {
      this.#timer = null
      this.deliver({ type: 'timer' })
    })
  }

  async #enter(state: VipState): Promise<void> {
    if (this.#entered === state) return
    this.#entered = state
    if (state !== 'MASTER') this.#clearRetry()
    try {
      await this.#d.vip.enter(state)
    } catch (e) {
      this.#log.error({ code: 'VIP_COMMAND_FAILED', state, err: (e as Error).message }, 'VIP driver failed')
      if (state === 'MASTER') this.#acquireFailed(e as Error)
    }
  }

  #reportLease(until: number | null): void {
    if (until === this.#reportedLease) return
    this.#reportedLease = until
    this.#d.vip.lease?.(until)
    for (const o of this.#d.leaseObservers ?? []) o.lease(until)
  }

  #clearRetry(): void {
    if (this.#retry !== null) clearTimeout(this.#retry)
    this.#retry = null
  }

  /**
   * A MASTER without its address: retried after `acquireRetryMs`, doubling up to
   * `acquireRetryMaxMs`; after `acquireAttempts` failures in a row the node fails its weight-0
   * check VIP_FAULT_CHECK (FAULT: the machine hands MASTER over) for `acquireFaultMs`.
   */
  #acquireFailed(err: Error): void {
    if (this.#stopped || this.#retry !== null) return
    const v = this.#vipConfig
    this.#acquireFailures++
    if (this.#acquireFailures >= v.acquireAttempts) {
      this.#log.error(
        {
          code: 'VIP_ACQUIRE_FAILED',
          attempts: this.#acquireFailures,
          faultMs: v.acquireFaultMs,
          err: err.message,
        },
        'cannot acquire the VIP: FAULT, handing MASTER over',
      )
      this.#acquireFailures = 0
      this.deliver({ type: 'check', name: VIP_FAULT_CHECK, passing: false })
      if (this.#faultTimer !== null) clearTimeout(this.#faultTimer)
      this.#faultTimer = setTimeout(() => {
        this.#faultTimer = null
        this.#log.info({}, 'eligible again after failing to acquire the VIP')
        this.deliver({ type: 'check', name: VIP_FAULT_CHECK, passing: true })
      }, v.acquireFaultMs)
      return
    }
    const delay = Math.min(v.acquireRetryMaxMs, v.acquireRetryMs * 2 ** (this.#acquireFailures - 1))
    this.#log.warn(
      { attempt: this.#acquireFailures, of: v.acquireAttempts, retryInMs: delay, err: err.message },
      'cannot acquire the VIP; retrying',
    )
    this.#retry = setTimeout(() => {
      this.#retry = null
      // still MASTER of this term (a release since then cleared the timer)
      if (this.#stopped || this.#entered !== 'MASTER' || !this.isMaster()) return
      this.#d.vip.enter('MASTER').then(
        () => {
          this.#log.info({ attempt: this.#acquireFailures + 1 }, 'VIP acquired after a retry')
          this.#acquireFailures = 0
          this.#d.vip.lease?.(this.#reportedLease)
        },
        (e: unknown) => this.#acquireFailed(e as Error),
      )
    }, delay)
  }

  #vrrpState(s: ElectionState): VipState {
    if (s.role === 'stopped' || this.#stopped) return 'STOP'
    if (s.role === 'leader') return 'MASTER'
    return electionStatus(s).eligible ? 'BACKUP' : 'FAULT'
  }

  #noteChanges(
    before: ReturnType<typeof electionStatus>,
    after: ReturnType<typeof electionStatus>,
    s: ElectionState,
  ): void {
    const leader = s.role === 'leader' ? this.#options.self : s.leader
    if (leader !== this.#lastLeader) {
      if (leader !== null) this.#log.info({ master: leader, term: s.term }, `MASTER is ${leader}`)
      else this.#log.warn({ term: s.term, previous: this.#lastLeader }, 'no MASTER known')
      this.#lastLeader = leader
    }
    if (before.eligible !== after.eligible && s.role !== 'stopped') {
      this.#log[after.eligible ? 'info' : 'warn'](
        { failing: [...s.failingChecks], maintenance: s.maintenance },
        after.eligible
          ? 'eligible again'
          : s.maintenance
            ? 'not eligible: in maintenance'
            : 'FAULT: a weight-0 check fails',
      )
    }
    // BACKUP <-> FAULT moves (notify scripts); MASTER transitions ran through the actions
    const want = this.#vrrpState(s)
    if (want !== 'MASTER' && this.#entered !== 'MASTER' && want !== this.#entered) void this.#enter(want)
    if (
      before.term !== after.term ||
      before.holder !== after.holder ||
      before.leader !== after.leader ||
      before.eligible !== after.eligible ||
      before.effectivePriority !== after.effectivePriority
    ) {
      this.#d.onChange?.()
    }
  }
}

/** The machine's options plus the weight-0 check a MASTER fails when it cannot acquire the VIP. */
function withVipCheck(o: ElectionOptions): ElectionOptions {
  if (o.checks.some((c) => c.name === VIP_FAULT_CHECK)) return o
  return { ...o, checks: [...o.checks, { name: VIP_FAULT_CHECK, weight: 0 }] }
}
