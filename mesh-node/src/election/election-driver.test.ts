import assert from 'node:assert/strict'
import { afterEach, describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ElectionConfigSchema, type ElectionMessage, VipConfigSchema } from '@pgmesh/protocol'
import { pino } from 'pino'
import type { VipDriver, VipState } from '../vip/vip-driver.js'
import { ElectionDriver, MAX_QUEUED_FRAMES } from './election-driver.js'
import { memoryElectionStore } from './election-store.js'

/** Records what the driver asked of the VIP, and when the address was "held". */
class RecordingVip implements VipDriver {
  readonly kind = 'none' as const
  readonly entered: VipState[] = []
  /** every lease the election reported, in order */
  readonly leases: (number | null)[] = []
  /** acquires that fail before one succeeds (Infinity: all of them) */
  failAcquires = 0
  acquireAttempts = 0
  /** the lease reported when the first acquire began */
  leaseAtAcquire: number | null | undefined
  #held = false
  async start() {}
  async reconfigure() {}
  async enter(state: VipState) {
    this.entered.push(state)
    if (state === 'MASTER') {
      this.leaseAtAcquire ??= this.leases.at(-1) ?? null
      this.acquireAttempts++
      if (this.failAcquires > 0) {
        this.failAcquires--
        this.#held = false
        throw new Error("'ip addr add' failed: Cannot find device")
      }
    }
    this.#held = state === 'MASTER'
  }
  lease(until: number | null) {
    this.leases.push(until)
  }
  announce() {}
  holds() {
    return this.#held
  }
  async stop() {}
}

interface TestNode {
  readonly id: string
  readonly driver: ElectionDriver
  readonly vip: RecordingVip
  readonly store: ReturnType<typeof memoryElectionStore>
  up: boolean
}

const log = pino({ level: 'silent' })
const config = ElectionConfigSchema.parse({})

/** Real drivers and timers, messages delivered in-process (asynchronously, like a network). */
function cluster(priorities: Record<string, number>, vipConfig = VipConfigSchema.parse({})): TestNode[] {
  const ids = Object.keys(priorities)
  const nodes = new Map<string, TestNode>()
  const deliver = (from: string, to: string, msg: ElectionMessage) => {
    setImmediate(() => {
      const src = nodes.get(from)
      const dst = nodes.get(to)
      if (src?.up && dst?.up) dst.driver.deliver({ type: 'message', from, msg })
    })
  }
  for (const id of ids) {
    const vip = new RecordingVip()
    const store = memoryElectionStore()
    const driver = new ElectionDriver({
      options: { self: id, priority: priorities[id]!, checks: [{ name: 'svc', weight: -20 }], config },
      initialVoters: ids,
      store,
      vip,
      vipConfig,
      send: (to, msg) => deliver(id, to, msg),
      broadcast: (msg, only) => {
        for (const to of only ?? ids) if (to !== id) deliver(id, to, msg)
      },
      now: () => performance.now(),
      logger: log,
    })
    nodes.set(id, { id, driver, vip, store, up: true })
  }
  return [...nodes.values()]
}

async function masterOf(nodes: readonly TestNode[], timeoutMs = 5_000): Promise<TestNode> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const masters = nodes.filter((n) => n.up && n.driver.isMaster())
    if (masters.length === 1) return masters[0]!
    assert.ok(masters.length <= 1, `two MASTERs: ${masters.map((m) => m.id).join(', ')}`)
    if (Date.now() > deadline) throw new Error('no MASTER elected in time')
    await sleep(10)
  }
}

describe('election driver (real timers, in-process network)', () => {
  let nodes: TestNode[] = []
  afterEach(async () => {
    for (const n of nodes) if (n.up) await n.driver.stop()
    nodes = []
  })

  it('elects the highest priority once its check passes, persists the term, and drives the VIP', async () => {
    nodes = cluster({ a: 110, b: 105, c: 100 })
    for (const n of nodes) await n.driver.start(['svc'], 7)
    for (const n of nodes) n.driver.deliver({ type: 'check', name: 'svc', passing: true })
    const m = await masterOf(nodes)
    assert.equal(m.id, 'a')
    assert.ok(m.vip.holds())
    assert.ok((m.store.saved?.term ?? 0) >= 1, 'the term is persisted before votes are sent')
    // b learns of the new MASTER from its first lease renewal
    for (let i = 0; i < 100 && nodes[1]!.driver.view().master === null; i++) await sleep(10)
    const v = nodes[1]!.driver.view()
    assert.equal(v.master, 'a')
    assert.equal(v.state, 'BACKUP')
  })

  it('a failing weighted check moves MASTER to the next node; a graceful stop hands over at once', async () => {
    nodes = cluster({ a: 110, b: 105, c: 100 })
    for (const n of nodes) await n.driver.start([], 11)
    assert.equal((await masterOf(nodes)).id, 'a')
    nodes[0]!.driver.deliver({ type: 'check', name: 'svc', passing: false })
    await sleep(50)
    const next = await masterOf(nodes)
    assert.equal(next.id, 'b')
    assert.equal(nodes[0]!.vip.holds(), false)
    assert.equal(nodes[0]!.driver.view().effectivePriority, 90)

    const stoppedAt = performance.now()
    await next.driver.stop()
    next.up = false
    assert.equal(next.vip.holds(), false)
    assert.equal(next.vip.entered.at(-1), 'STOP')
    const third = await masterOf(nodes)
    assert.notEqual(third.id, 'b')
    // a hand-over, not a lease timeout plus an election
    assert.ok(performance.now() - stoppedAt < config.leaseMs + config.electionTimeoutMaxMs)
  })

  it('tells the VIP driver every lease renewal before and while it holds the VIP, and null after the release', async () => {
    nodes = cluster({ a: 110, b: 105, c: 100 })
    for (const n of nodes) await n.driver.start([], 3)
    const m = await masterOf(nodes)
    const firstAt = performance.now()
    await sleep(config.leaseMs * 2)
    const leases = m.vip.leases.filter((l): l is number => l !== null)
    // renewed every heartbeat: many reports, each later than the one before, each within one lease of now
    assert.ok(leases.length >= 3, `only ${leases.length} lease reports`)
    for (let i = 1; i < leases.length; i++)
      assert.ok(leases[i]! > leases[i - 1]!, 'a renewal moves the lease forward')
    assert.ok(leases.at(-1)! > firstAt, 'the last report is a lease still running')
    assert.ok(leases.at(-1)! <= performance.now() + config.leaseMs, 'never beyond one lease from now')
    // the first report came before the MASTER entered (the fence is armed with a timeout)
    assert.equal(typeof m.vip.leaseAtAcquire, 'number')
    m.driver.deliver({ type: 'maintenance', enabled: true })
    await masterOf(nodes.filter((n) => n !== m))
    await m.driver.settled()
    assert.equal(m.vip.leases.at(-1), null, 'a released MASTER reports no lease')
    assert.equal(m.driver.servesVip(), false)
  })

  it('a MASTER whose VIP cannot be added retries with backoff, then goes FAULT and hands over; /master only with lease and address', async () => {
    const vipConfig = VipConfigSchema.parse({
      acquireRetryMs: 20,
      acquireRetryMaxMs: 40,
      acquireAttempts: 3,
      acquireFaultMs: 60_000,
    })
    nodes = cluster({ a: 110, b: 105, c: 100 }, vipConfig)
    nodes[0]!.vip.failAcquires = Number.POSITIVE_INFINITY
    for (const n of nodes) await n.driver.start([], 5)
    const deadline = Date.now() + 10_000
    let sawMasterWithoutAddress = false
    while (nodes[1]!.driver.view().state !== 'MASTER' || !nodes[1]!.vip.holds()) {
      assert.ok(Date.now() < deadline, 'b never took over from a MASTER without its VIP')
      const a = nodes[0]!.driver
      if (a.isMaster() && !nodes[0]!.vip.holds()) {
        sawMasterWithoutAddress = true
        assert.equal(a.servesVip(), false, 'a MASTER without the address must not answer /master with 200')
      }
      await sleep(5)
    }
    assert.ok(sawMasterWithoutAddress, 'a was MASTER (without its VIP) first')
    assert.equal(nodes[0]!.vip.acquireAttempts, 3, 'acquireAttempts tries, then FAULT')
    const v = nodes[0]!.driver.view()
    assert.equal(v.state, 'FAULT')
    assert.ok(v.failingChecks.includes('pgmesh:vip'))
    assert.equal(nodes[1]!.driver.servesVip(), true)
  })

  it('one failed acquire is retried and the MASTER keeps its term', async () => {
    const vipConfig = VipConfigSchema.parse({ acquireRetryMs: 20, acquireAttempts: 4 })
    nodes = cluster({ a: 110, b: 105, c: 100 }, vipConfig)
    nodes[0]!.vip.failAcquires = 1
    for (const n of nodes) await n.driver.start([], 9)
    const m = await masterOf(nodes)
    assert.equal(m.id, 'a')
    const deadline = Date.now() + 5_000
    while (!m.driver.servesVip()) {
      assert.ok(Date.now() < deadline, 'the retry never acquired the VIP')
      await sleep(5)
    }
    assert.equal(m.vip.acquireAttempts, 2)
    assert.equal(m.driver.view().state, 'MASTER')
  })
})

describe('election driver inbound queue', () => {
  it('drops peers’ frames beyond MAX_QUEUED_FRAMES while the step is busy, and counts them', async () => {
    const vip = new RecordingVip()
    const d = new ElectionDriver({
      options: { self: 'n1', priority: 100, checks: [], config },
      initialVoters: ['n1', 'n2', 'n3'],
      store: memoryElectionStore(),
      vip,
      vipConfig: VipConfigSchema.parse({}),
      send: () => undefined,
      broadcast: () => undefined,
      now: () => performance.now(),
      logger: log,
    })
    // before start() the step cannot drain: the queue only fills
    const frame: ElectionMessage = {
      kind: 'status',
      term: 1,
      effectivePriority: 100,
      eligible: true,
      holder: false,
      leader: null,
      config: null,
    }
    for (let i = 0; i < MAX_QUEUED_FRAMES + 500; i++) d.deliver({ type: 'message', from: 'n2', msg: frame })
    d.deliver({ type: 'check', name: 'x', passing: true })
    assert.equal(d.queueDrops(), 500, 'the excess of peers’ frames is dropped and counted')
    await d.start([], 1)
    await d.settled()
    await d.stop()
  })
})
