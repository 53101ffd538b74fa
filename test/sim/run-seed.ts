import { effectivePriority, hasQuorum, type WeightedCheck } from '@pgmesh/mesh-node/election'
import {
  checkPriorityWeights,
  type ElectionConfig,
  type ElectionConfigInput,
  ElectionConfigSchema,
} from '@pgmesh/protocol'
import { ClusterSim, type NetworkModel, type SimNode } from './cluster-sim.js'
import { scheduleHostile } from './hostile.js'
import { Prng } from './prng.js'

export interface Failovers {
  /** MASTER process killed (its connections close) → another node acquires the VIP, ms */
  readonly crash: number[]
  /** MASTER cut off by a partition (no connection closes) → another node acquires the VIP, ms */
  readonly partition: number[]
  /** MASTER stopped gracefully → another node acquires the VIP, ms */
  readonly stop: number[]
}

export interface SeedResult {
  readonly seed: number
  readonly summary: string
  readonly violations: readonly string[]
  readonly trace: readonly string[] | null
  /** measured only with the default timings and `quorum: majority` */
  readonly failovers: Failovers
  readonly steps: number
}

const TIMING_VARIANTS: readonly ElectionConfigInput[] = [
  { heartbeatIntervalMs: 100, leaseMs: 600, electionTimeoutMinMs: 700, electionTimeoutMaxMs: 900 },
  {
    heartbeatIntervalMs: 20,
    leaseMs: 100,
    electionTimeoutMinMs: 120,
    electionTimeoutMaxMs: 200,
    statusIntervalMs: 100,
  },
  {
    heartbeatIntervalMs: 50,
    leaseMs: 250,
    electionTimeoutMinMs: 150,
    electionTimeoutMaxMs: 200,
    rankStaggerMs: 0,
  },
]

type Episode =
  | 'crashMaster'
  | 'partitionMaster'
  | 'stopMaster'
  | 'pauseMaster'
  | 'checkFail'
  | 'crashRandom'
  | 'randomPartition'
  | 'lossy'
  | 'join'
  | 'leave'
  | 'removeDead'
  | 'spuriousDisconnect'
  | 'chaos'
  | 'hostile'

const EPISODES: readonly [Episode, number][] = [
  ['crashMaster', 3],
  ['partitionMaster', 3],
  ['stopMaster', 1],
  ['pauseMaster', 2],
  ['checkFail', 2],
  ['crashRandom', 1],
  ['randomPartition', 2],
  ['lossy', 1],
  ['join', 1],
  ['leave', 1],
  ['removeDead', 1],
  ['spuriousDisconnect', 1],
  ['chaos', 3],
  ['hostile', 3],
]

export const EPISODES_PER_SEED = 5

/** Runs one seeded scenario: random cluster, random faults, invariants checked after every step. */
export function runSeed(seed: number, opts: { trace?: boolean } = {}): SeedResult {
  const rng = new Prng(seed)
  // 1: a cluster founded by one node (no --join), which the others then join
  const size = rng.pick([1, 2, 3, 3, 3, 4, 5, 5, 6, 7])
  const quorum = (size === 2 ? rng.chance(0.5) : rng.chance(0.08)) ? 'none' : 'majority'
  const defaultTimings = rng.chance(0.7)
  const config = ElectionConfigSchema.parse({
    quorum,
    nopreempt: rng.chance(0.15),
    preemptDelayMs: rng.chance(0.25) ? 300 : 0,
    maxClockDriftMs: defaultTimings ? 10 : rng.pick([0, 10, 25]),
    ...(defaultTimings ? {} : rng.pick(TIMING_VARIANTS)),
  })
  const net: NetworkModel = {
    lossRate: 0,
    duplicateRate: 0,
    minDelayMs: 0.2,
    maxDelayMs: rng.pick([1, 3, 6]),
    spikeRate: 0.02,
    spikeMaxMs: 30,
  }
  const sim = new ClusterSim(config, net, rng, opts.trace === true)
  const failovers: Failovers = { crash: [], partition: [], stop: [] }
  const measure = defaultTimings && quorum === 'majority'
  const driftRate = config.maxClockDriftMs / (2 * config.leaseMs - config.maxClockDriftMs)
  const clockRate = () => {
    const rho = driftRate * 0.999
    return rng.chance(0.5) ? (rng.chance(0.5) ? 1 - rho : 1 + rho) : rng.range(1 - rho, 1 + rho)
  }

  const founders = Array.from({ length: size }, (_, i) => `n${i}`)
  const priorities = shuffle(
    rng,
    founders.map((_, i) => 100 + 10 * i),
  )
  const specs = founders.map((id, i) => ({
    id,
    priority: priorities[i] ?? 100,
    checks: [] as WeightedCheck[],
  }))
  assignChecks(rng, specs)
  const issues = checkPriorityWeights(specs)
  if (issues.length > 0)
    sim.violation(`scenario generator made weights Keepalived rejects: ${issues[0]?.message}`)
  for (const s of specs) {
    sim.addNode({ ...s, rate: clockRate(), offset: rng.range(0, 1e6), joiner: false })
  }
  sim.setMembers(founders)
  for (const id of founders) sim.at(rng.range(0, 50), () => sim.start(id, founders))

  const bound = failoverBound(config, size + 2, net)
  const settle = bound + config.preemptDelayMs + 1_000
  const summary =
    `${size} nodes, quorum ${quorum}${config.nopreempt ? ', nopreempt' : ''}, ` +
    `${defaultTimings ? 'default timings' : `lease ${config.leaseMs} ms, heartbeat ${config.heartbeatIntervalMs} ms`}, ` +
    `drift ${config.maxClockDriftMs} ms/lease, failover bound ${bound.toFixed(0)} ms`
  sim.log(`SCENARIO seed ${seed}: ${summary}`)
  const budget = 3_000_000

  sim.runUntil(settle + 500, budget)
  expectMaster(sim, 'after start', true)

  let nextId = size
  for (let k = 0; k < EPISODES_PER_SEED && sim.violations.length === 0; k++) {
    const episode = weightedPick(rng, EPISODES)
    const t0 = sim.now
    const master = sim.holders().find((n) => n.status === 'running') ?? null
    const stable = isStable(sim, master)
    sim.log(`EPISODE ${k + 1}: ${episode}${master === null ? '' : ` (MASTER ${master.id})`}`)
    let faultEnd = t0 + rng.range(300, 1_500)
    let measured: keyof Failovers | null = null
    const live = () => [...sim.nodes.values()].filter((n) => n.status === 'running')
    switch (episode) {
      case 'crashMaster':
        if (master === null) break
        sim.crash(master.id)
        measured = 'crash'
        faultEnd = t0 + bound + 100
        break
      case 'stopMaster':
        if (master === null) break
        sim.stop(master.id)
        measured = 'stop'
        faultEnd = t0 + bound + 100
        break
      case 'partitionMaster':
        if (master === null) break
        sim.partition(new Map([[master.id, 1]]))
        maybeLateDisconnects(sim, rng, [master.id])
        measured = 'partition'
        faultEnd = t0 + bound + rng.range(100, 1_000)
        break
      case 'pauseMaster': {
        if (master === null) break
        const length = rng.pick([config.leaseMs / 2, config.leaseMs, 2 * config.leaseMs, 1_500])
        sim.pause(master.id)
        if (rng.chance(0.3)) {
          for (const n of live()) sim.disconnect(n.id, master.id, rng.range(300, length + 300))
        }
        faultEnd = t0 + length
        break
      }
      case 'checkFail': {
        const target = master !== null && rng.chance(0.7) ? master : rng.pick([...sim.nodes.values()])
        const check = target.checks.length > 0 ? rng.pick(target.checks) : null
        if (check !== null) sim.setCheck(target.id, check.name, false)
        break
      }
      case 'crashRandom': {
        const nodes = live()
        if (nodes.length > 0) sim.crash(rng.pick(nodes).id)
        break
      }
      case 'randomPartition': {
        const groups = new Map<string, number>()
        const parts = rng.int(2, 3)
        for (const id of sim.nodes.keys()) groups.set(id, rng.int(0, parts - 1))
        sim.partition(groups)
        maybeLateDisconnects(sim, rng, [])
        break
      }
      case 'lossy':
        sim.net.lossRate = rng.range(0.1, 0.4)
        break
      case 'join': {
        if (sim.members.length >= 7) break
        const id = `n${nextId++}`
        const used = new Set([...sim.nodes.values()].map((n) => n.priority))
        let priority = 95 + rng.int(0, 20) * 5
        while (used.has(priority)) priority += 1
        const checks: WeightedCheck[] = rng.chance(0.5) ? [{ name: 'fault', weight: 0 }] : []
        sim.addNode({ id, priority, checks, rate: clockRate(), offset: rng.range(0, 1e6), joiner: true })
        sim.start(id, null)
        sim.setMembers([...sim.members, id])
        break
      }
      case 'leave': {
        const candidates = live().filter((n) => n !== master && sim.members.includes(n.id))
        if (candidates.length === 0 || sim.members.length <= 2) break
        const leaving = rng.pick(candidates)
        sim.stop(leaving.id)
        sim.at(sim.now + rng.range(20, 200), () => {
          sim.setMembers(sim.members.filter((id) => id !== leaving.id))
          sim.remove(leaving.id)
        })
        break
      }
      case 'removeDead': {
        if (sim.members.length <= 2) break
        const candidates = live().filter((n) => n !== master && sim.members.includes(n.id))
        if (candidates.length === 0) break
        const dead = rng.pick(candidates)
        sim.crash(dead.id)
        sim.at(sim.now + rng.range(200, 1_000), () => {
          sim.remove(dead.id)
          sim.setMembers(sim.members.filter((id) => id !== dead.id))
        })
        faultEnd = t0 + 1_200
        break
      }
      case 'spuriousDisconnect': {
        const nodes = live()
        for (let i = 0; i < 4 && nodes.length > 1; i++) {
          const a = rng.pick(nodes)
          const b = master !== null && rng.chance(0.6) ? master : rng.pick(nodes)
          if (a !== b) sim.disconnect(a.id, b.id, rng.range(0, 300))
        }
        break
      }
      case 'chaos':
        scheduleChaos(sim, rng, faultEnd - t0, founders)
        break
      case 'hostile':
        // `quorum: none` is Keepalived: any member's advert wins there, by design
        if (quorum !== 'majority') break
        // with a fault of its own now and then: the hostile frames land on a cluster in failover
        if (rng.chance(0.4)) scheduleChaos(sim, rng, faultEnd - t0, founders)
        scheduleHostile(sim, rng, faultEnd - t0, rng.int(20, 120))
        break
    }

    sim.runUntil(faultEnd, budget)
    if (measured !== null && master !== null && stable && measure) {
      const next = sim.acquisitions.find((a) => a.at > t0 && a.id !== master.id)
      if (next !== undefined) failovers[measured].push(next.at - t0)
      else if (hasConnectedMajority(sim, master.id)) {
        sim.violation(`no new MASTER within the failover bound ${bound.toFixed(0)} ms after ${episode}`)
      }
    }
    healAll(sim, rng, founders)
    const healedAt = sim.now
    sim.runUntil(healedAt + bound, budget)
    expectMaster(sim, `${bound.toFixed(0)} ms after healing from ${episode}`, false)
    sim.runUntil(healedAt + settle, budget)
    expectMaster(sim, `settled after ${episode}`, true)
  }

  return {
    seed,
    summary,
    violations: sim.violations,
    trace: sim.trace,
    failovers,
    steps: sim.steps,
  }
}

/**
 * Worst case from a MASTER's death to a new one, with nothing else failing: its lease (plus the
 * drift allowance) or the election timeout, whichever is longer; the rank stagger of every node;
 * a present better node going stale (two status intervals); one lost round; network spikes.
 */
export function failoverBound(c: ElectionConfig, nodes: number, net: NetworkModel): number {
  return (
    Math.max(c.leaseMs + c.maxClockDriftMs, c.electionTimeoutMaxMs) +
    c.electionTimeoutMaxMs +
    (nodes + 1) * c.rankStaggerMs +
    2 * c.statusIntervalMs +
    c.heartbeatIntervalMs +
    6 * net.spikeMaxMs
  )
}

function assignChecks(rng: Prng, specs: { id: string; priority: number; checks: WeightedCheck[] }[]): void {
  for (const s of specs) {
    if (rng.chance(0.5)) s.checks.push({ name: 'fault', weight: 0 })
    if (rng.chance(0.2)) s.checks.push({ name: 'bonus', weight: 5 })
  }
  for (const s of specs) {
    const hasBonus = s.checks.some((c) => c.weight > 0)
    if (!hasBonus && !rng.chance(0.5)) continue
    const lowestOther = Math.min(
      ...specs
        .filter((o) => o !== s)
        .map((o) => o.priority + o.checks.reduce((sum, c) => sum + Math.max(0, c.weight), 0)),
    )
    if (!Number.isFinite(lowestOther)) continue
    const weight = Math.min(-1, lowestOther - 1 - s.priority - rng.int(0, 10))
    s.checks.push({ name: 'health', weight })
  }
}

function isStable(sim: ClusterSim, master: SimNode | null): boolean {
  if (master === null) return false
  const voters = sim.latestVoters()
  if (voters === null || voters.prev !== null) return false
  return voters.voters.every((id) => sim.nodes.get(id)?.status === 'running')
}

/** A group of running nodes holding a quorum and an eligible voter (`without` one node, when given). */
function hasConnectedMajority(sim: ClusterSim, without?: string): boolean {
  const voters = sim.latestVoters()
  if (voters === null) return false
  const groups = new Map<number, Set<string>>()
  for (const n of sim.nodes.values()) {
    if (n.status !== 'running' || n.id === without) continue
    const g = groups.get(n.group) ?? new Set<string>()
    g.add(n.id)
    groups.set(n.group, g)
  }
  for (const g of groups.values()) {
    if (!hasQuorum(voters, g)) continue
    const eligible = [...g].some((id) => {
      const n = sim.node(id)
      return voters.voters.includes(id) && effectivePriority(n.priority, n.checks, n.failing).eligible
    })
    if (eligible) return true
  }
  return false
}

/**
 * After healing: one MASTER among running nodes whenever a connected majority with an eligible
 * voter exists; once settled it must be the best eligible voter (unless nopreempt).
 */
function expectMaster(sim: ClusterSim, label: string, requireBest: boolean): void {
  const running = [...sim.nodes.values()].filter((n) => n.status === 'running')
  let candidates = running
  if (sim.config.quorum === 'majority') {
    const voters = sim.latestVoters()
    if (voters === null || !hasConnectedMajority(sim)) return
    candidates = running.filter((n) => voters.voters.includes(n.id))
  }
  const best = sim.bestEligible(candidates)
  if (best === null) return
  const holders = running.filter((n) => n.holding)
  if (holders.length !== 1) {
    sim.violation(
      `${label}: expected one MASTER, found ${holders.length} (${holders.map((h) => h.id).join(',')})`,
    )
    return
  }
  const holder = holders[0]
  if (requireBest && !sim.config.nopreempt && holder !== best) {
    sim.violation(`${label}: MASTER is ${holder?.id}, but the best eligible node is ${best.id}`)
  }
}

function healAll(sim: ClusterSim, rng: Prng, founders: readonly string[]): void {
  sim.heal()
  for (const n of sim.nodes.values()) {
    if (n.status === 'paused') sim.resume(n.id)
    if ((n.status === 'crashed' || n.status === 'stopped') && rng.chance(0.8)) {
      sim.start(n.id, n.joiner ? null : founders)
    }
    for (const name of [...n.failing]) if (rng.chance(0.6)) sim.setCheck(n.id, name, true)
  }
}

/** A partition eventually makes libp2p drop connections (ping timeouts) while both sides live on. */
function maybeLateDisconnects(sim: ClusterSim, rng: Prng, only: readonly string[]): void {
  if (!rng.chance(0.5)) return
  for (const a of sim.nodes.values()) {
    for (const b of sim.nodes.values()) {
      if (a === b || a.group === b.group) continue
      if (only.length > 0 && !only.includes(b.id)) continue
      sim.disconnect(a.id, b.id, rng.range(200, 1_000))
    }
  }
}

function scheduleChaos(sim: ClusterSim, rng: Prng, windowMs: number, founders: readonly string[]): void {
  const start = sim.now
  const ids = [...sim.nodes.keys()]
  const faults = rng.int(2, 5)
  for (let i = 0; i < faults; i++) {
    const at = start + rng.range(0, windowMs)
    const id = rng.pick(ids)
    const kind = rng.int(0, 7)
    sim.at(at, () => {
      switch (kind) {
        case 0:
          sim.pause(id)
          sim.at(sim.now + rng.range(50, 800), () => sim.resume(id))
          break
        case 1:
          sim.crash(id)
          if (rng.chance(0.5)) {
            sim.at(sim.now + rng.range(50, 500), () => sim.start(id, sim.node(id).joiner ? null : founders))
          }
          break
        case 2: {
          const groups = new Map<string, number>()
          for (const other of ids) groups.set(other, rng.int(0, 1))
          sim.partition(groups)
          break
        }
        case 3:
          sim.net.lossRate = rng.range(0.05, 0.5)
          break
        case 4:
          sim.disconnect(rng.pick(ids), id, rng.range(0, 100))
          break
        case 5:
          sim.blockedLinks.add(rng.chance(0.5) ? `${id}>${rng.pick(ids)}` : `${rng.pick(ids)}>${id}`)
          break
        case 6:
          sim.net.duplicateRate = rng.range(0.05, 0.3)
          break
        default: {
          const n = sim.node(id)
          const check = n.checks.length > 0 ? rng.pick(n.checks) : null
          if (check !== null) sim.setCheck(id, check.name, n.failing.has(check.name))
        }
      }
    })
  }
}

function weightedPick<T>(rng: Prng, items: readonly [T, number][]): T {
  const total = items.reduce((s, [, w]) => s + w, 0)
  let x = rng.range(0, total)
  for (const [item, w] of items) {
    x -= w
    if (x < 0) return item
  }
  const last = items[items.length - 1]
  if (last === undefined) throw new Error('empty choice')
  return last[0]
}

function shuffle<T>(rng: Prng, items: readonly T[]): T[] {
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i)
    const t = out[i] as T
    out[i] = out[j] as T
    out[j] = t
  }
  return out
}
