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
  #held = false
  async start() {}
  async reconfigure() {}
  async enter(state: VipState) {
    this.entered.push(state)
    this.#held = state === 'MASTER'
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
function cluster(priorities: Record<string, number>): TestNode[] {
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
      vipConfig: VipConfigSchema.parse({}),
      send: (to, msg) => deliver(id, to, msg),
      broadcast: (msg) => {
        for (const to of ids) if (to !== id) deliver(id, to, msg)
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
