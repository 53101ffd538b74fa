import type { ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { type ClusterStatus, ClusterStatusSchema } from '@pgmesh/protocol'
import { fenceTable } from '../../mesh-node/src/vip/kernel-fence.js'
import { ip, type NetnsLab } from './netns-lab.js'
import { CLI, NODE_FLAGS, ROOT, runCli, type Sandbox } from './processes.js'

export const VIP = '198.18.0.100'
export const SERVICE_PORT = 5000
export const PRIORITIES: Readonly<Record<string, number>> = { n1: 110, n2: 105, n3: 100 }
export const NODE_NAMES = Object.keys(PRIORITIES)

/**
 * Three pgmesh nodes in their own namespaces with the linux VIP driver, a tracked TCP check on a
 * local service (weight -20, so a failed 110 drops below the healthy 100), and that service
 * answering the client with the node's name.
 */
export class VipLab {
  readonly nodes = new Map<string, ChildProcess>()
  readonly services = new Map<string, ChildProcess>()
  client: ChildProcess | null = null
  #secret = ''

  /**
   * `extra.cluster`: YAML lines appended to every node's cluster section (2-space indented);
   * `extra.vip`: another VIP (an IPv6 one, say) than `VIP/24`; `extra.iface`: a node's VIP
   * interface, when not eth0 (one that does not exist makes every `ip addr add` fail)
   */
  constructor(
    readonly sb: Sandbox,
    readonly lab: NetnsLab,
    readonly extra: {
      readonly cluster?: readonly string[]
      readonly vip?: string
      readonly iface?: Readonly<Record<string, string>>
    } = {},
  ) {}

  /** the VIP's address without its prefix */
  get vip(): string {
    return (this.extra.vip ?? `${VIP}/24`).split('/')[0]!
  }

  /** Rewrites a node's config with its VIP on `iface` (applies at its next start). */
  async setInterface(name: string, iface: string): Promise<void> {
    ;(this.extra as { iface?: Record<string, string> }).iface = { ...this.extra.iface, [name]: iface }
    await this.#writeConfig(name)
  }

  async init(): Promise<void> {
    this.#secret = join(this.sb.dir, 'cluster.secret')
    const r = await runCli(this.sb, ['keygen', '--out', this.#secret, '--force'])
    if (r.code !== 0) throw new Error(`keygen failed: ${r.stderr}`)
    for (const name of NODE_NAMES) await this.#writeConfig(name)
  }

  async #writeConfig(name: string): Promise<void> {
    const h = this.lab.host(name)
    const others = NODE_NAMES.filter((n) => n !== name).map((n) => `${this.lab.host(n).address}:7946`)
    const yaml = [
      'node:',
      `  id: ${name}`,
      `  priority: ${PRIORITIES[name]}`,
      `  gossip: { listen: "${h.address}:7946" }`,
      // beyond loopback reads need a token by default; the lab reads status without one
      `  api: { listen: "${h.address}:7947", protectReads: false }`,
      `  join: [${others.map((o) => `"${o}"`).join(', ')}]`,
      `  secretFile: ${this.#secret}`,
      `  dataDir: ${join(this.sb.dir, 'data', name)}`,
      '  logLevel: debug',
      `  vip: { interface: ${this.extra.iface?.[name] ?? 'eth0'} }`,
      'cluster:',
      '  name: lab',
      '  members:',
      ...NODE_NAMES.map((n) => `    - { id: ${n}, priority: ${PRIORITIES[n]} }`),
      '  checks:',
      '    - name: service',
      '      kind: tcp',
      '      host: 127.0.0.1',
      `      port: ${SERVICE_PORT}`,
      '      intervalMs: 100',
      '      timeoutMs: 100',
      '      fall: 2',
      '      rise: 2',
      '      weight: -20',
      '  vip:',
      `    address: ${this.extra.vip ?? `${VIP}/24`}`,
      '    driver: linux',
      ...(this.extra.cluster ?? []),
      '',
    ].join('\n')
    await writeFile(join(this.sb.dir, `${name}.yaml`), yaml)
  }

  startNode(name: string): ChildProcess {
    const p = this.sb.spawnCommand(
      'ip',
      this.lab.inside(name, [
        process.execPath,
        ...NODE_FLAGS,
        CLI,
        'start',
        '--config',
        join(this.sb.dir, `${name}.yaml`),
      ]),
      `${name}.log`,
    )
    this.nodes.set(name, p)
    return p
  }

  startService(name: string): ChildProcess {
    const p = this.sb.spawnCommand(
      'ip',
      this.lab.inside(name, [
        process.execPath,
        '--import',
        'tsx',
        join(ROOT, 'test', 'helpers', 'netns', 'serve-id.ts'),
        name,
        String(SERVICE_PORT),
      ]),
      `${name}.service.log`,
      ROOT,
    )
    this.services.set(name, p)
    return p
  }

  /** The client in its own namespace, probing the VIP every `everyMs` (bounded: 12000 probes). */
  startClient(everyMs = 50): void {
    this.client = this.sb.spawnCommand(
      'ip',
      this.lab.inside('client', [
        process.execPath,
        '--import',
        'tsx',
        join(ROOT, 'test', 'helpers', 'netns', 'probe-vip.ts'),
        this.vip,
        String(SERVICE_PORT),
        String(everyMs),
        String(Math.ceil((everyMs === 50 ? 600_000 : 3_600_000) / everyMs)),
      ]),
      'client.log',
      ROOT,
    )
  }

  readonly #probes: { t: number; node: string | null }[] = []
  #probeBytes = 0

  /** Client probes since `since` (epoch ms): who answered. Reads only what the client appended. */
  async answers(since: number): Promise<{ t: number; node: string | null }[]> {
    const buf = await readFile(join(this.sb.dir, 'client.log')).catch(() => Buffer.alloc(0))
    const end = buf.lastIndexOf(10) + 1
    if (end > this.#probeBytes) {
      for (const line of buf.subarray(this.#probeBytes, end).toString('utf8').split('\n')) {
        if (!line.startsWith('{')) continue
        try {
          this.#probes.push(JSON.parse(line) as { t: number; node: string | null })
        } catch {
          // not a probe line
        }
      }
      this.#probeBytes = end
    }
    return this.#probes.filter((p) => p.t >= since)
  }

  /** Resolves with the time of the first probe after `since` answered by `node`, if there is one yet. */
  async servedBy(node: string, since: number): Promise<number | undefined> {
    return (await this.answers(since)).find((a) => a.node === node)?.t
  }

  async status(name: string): Promise<ClusterStatus> {
    const res = await fetch(`http://${this.lab.host(name).address}:7947/v1/status`, {
      signal: AbortSignal.timeout(1000),
    })
    return ClusterStatusSchema.parse(await res.json())
  }

  async masterStatus(name: string): Promise<number> {
    const res = await fetch(`http://${this.lab.host(name).address}:7947/master`, {
      signal: AbortSignal.timeout(1000),
    })
    await res.body?.cancel()
    return res.status
  }

  /** Which namespaces have the VIP on eth0 right now. */
  async holders(): Promise<string[]> {
    const out: string[] = []
    for (const name of NODE_NAMES) if ((await this.vipState(name)).address) out.push(name)
    return out
  }

  /**
   * What the kernel of `name`'s namespace does for the VIP now: whether the address is on eth0,
   * whether pgmesh's fence table is there, and whether its lease element lives. It answers for
   * the VIP when the address is there and no fence stops it.
   */
  async vipState(
    name: string,
  ): Promise<{ address: boolean; fence: boolean; lease: boolean; answers: boolean }> {
    const table = fenceTable('eth0', name, this.vip)
    const out = await ip(
      'netns',
      'exec',
      this.lab.host(name).netns,
      'sh',
      '-c',
      `ip -o addr show dev eth0; nft list set inet ${table} lease 2>/dev/null || true`,
    )
    const address = new RegExp(`inet6? ${this.vip.replaceAll('.', '\\.')}/`).test(out)
    const fence = out.includes(`table inet ${table}`)
    const lease = /elements = \{/.test(out)
    return { address, fence, lease, answers: address && (!fence || lease) }
  }

  /** eth0's MAC address in each node's namespace → the node */
  async macs(): Promise<Map<string, string>> {
    const m = new Map<string, string>()
    for (const name of NODE_NAMES) {
      const out = await ip('-n', this.lab.host(name).netns, 'link', 'show', 'dev', 'eth0')
      const mac = /link\/ether (\S+)/.exec(out)?.[1]
      if (mac !== undefined) m.set(mac.toLowerCase(), name)
    }
    return m
  }

  async flushClientArp(): Promise<void> {
    await ip('-n', this.lab.host('client').netns, 'neigh', 'flush', 'dev', 'eth0').catch(() => undefined)
  }
}

/**
 * Samples `holders()` in a loop until stopped and reports the longest stretch during which two
 * or more namespaces held the VIP (sampling makes this an over-estimate by one sample at most).
 */
export function watchHolders(vl: VipLab): {
  stop(): Promise<{ samples: number; maxOverlapMs: number; worst: string[] }>
} {
  let running = true
  let samples = 0
  let overlapSince: number | null = null
  let maxOverlapMs = 0
  let worst: string[] = []
  const loop = (async () => {
    while (running) {
      const t = Date.now()
      const h = await vl.holders()
      samples++
      if (h.length >= 2) {
        overlapSince ??= t
        const d = Date.now() - overlapSince
        if (d >= maxOverlapMs) {
          maxOverlapMs = d
          worst = h
        }
      } else overlapSince = null
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return { samples, maxOverlapMs, worst }
    },
  }
}

/**
 * ARP requests for the VIP from the client's namespace every `everyMs` (one arping process,
 * bounded by `durationMs`), each reply timestamped as it arrives: which hosts answer, and when.
 */
export async function watchArp(
  vl: VipLab,
  durationMs: number,
  everyMs = 20,
): Promise<{
  /** the replies so far (grows while the watch runs) */
  readonly replies: readonly { t: number; node: string }[]
  stop(): Promise<{ replies: { t: number; node: string }[]; requests: number }>
}> {
  const macs = await vl.macs()
  const replies: { t: number; node: string }[] = []
  const count = Math.ceil(durationMs / everyMs)
  const p = vl.sb.spawnCommand(
    'ip',
    vl.lab.inside('client', [
      'arping',
      '-c',
      String(count),
      '-W',
      String(everyMs / 1000),
      '-i',
      'eth0',
      vl.vip,
    ]),
    'arping.log',
  )
  let buf = ''
  p.stdout?.setEncoding('utf8').on('data', (d: string) => {
    const t = Date.now()
    buf += d
    const lines = buf.split('\n')
    buf = lines.pop() ?? ''
    for (const l of lines) {
      const mac = /bytes from ([0-9a-f:]{17})/i.exec(l)?.[1]?.toLowerCase()
      if (mac !== undefined) replies.push({ t, node: macs.get(mac) ?? mac })
    }
  })
  const startedAt = Date.now()
  return {
    replies,
    async stop() {
      if (p.exitCode === null) p.kill('SIGKILL')
      await new Promise((r) => (p.exitCode === null && p.signalCode === null ? p.once('exit', r) : r(null)))
      return { replies, requests: Math.floor((Date.now() - startedAt) / everyMs) }
    },
  }
}

/**
 * Samples every node namespace's kernel state for the VIP (`vipState`) in a loop until stopped:
 * the longest stretch during which two or more namespaces answered for it, and every sample.
 */
export function watchKernels(vl: VipLab): {
  stop(): Promise<{
    samples: number
    maxOverlapMs: number
    worst: string[]
    log: { t: number; answering: string[] }[]
  }>
} {
  let running = true
  let samples = 0
  let overlapSince: number | null = null
  let maxOverlapMs = 0
  let worst: string[] = []
  const log: { t: number; answering: string[] }[] = []
  const loop = (async () => {
    while (running) {
      const t = Date.now()
      const states = await Promise.all(
        NODE_NAMES.map(async (n) => [n, await vl.vipState(n).catch(() => null)] as const),
      )
      const answering = states.filter(([, s]) => s?.answers === true).map(([n]) => n)
      samples++
      log.push({ t, answering })
      if (answering.length >= 2) {
        overlapSince ??= t
        const d = Date.now() - overlapSince
        if (d >= maxOverlapMs) {
          maxOverlapMs = d
          worst = answering
        }
      } else overlapSince = null
      await new Promise((r) => setTimeout(r, 5))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      return { samples, maxOverlapMs, worst, log }
    },
  }
}

/** The longest stretch during which two or more hosts answered ARP within `windowMs` of each other. */
export function twoHostStretch(replies: readonly { t: number; node: string }[], windowMs = 60): number {
  if (replies.length === 0) return 0
  const sorted = [...replies].sort((a, b) => a.t - b.t)
  let longest = 0
  let since: number | null = null
  let lo = 0
  for (let t = sorted[0]!.t, hi = 0; t <= sorted.at(-1)!.t; t += 5) {
    while (hi < sorted.length && sorted[hi]!.t <= t) hi++
    while (lo < hi && sorted[lo]!.t <= t - windowMs) lo++
    const nodes = new Set(sorted.slice(lo, hi).map((r) => r.node))
    if (nodes.size >= 2) {
      since ??= t
      longest = Math.max(longest, t - since)
    } else since = null
  }
  return longest
}
