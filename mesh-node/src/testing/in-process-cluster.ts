import { generateKeyPair } from '@libp2p/crypto/keys'
import { type ConfigFile, type ConfigFileInput, validateConfig } from '@pgmesh/protocol'
import { pino } from 'pino'
import type { Logger } from '../log.js'
import { MeshNode } from '../mesh-node.js'
import { FakeClock } from './fake-clock.js'
import { MemoryNetwork } from './memory-transport.js'

export interface InProcessNodeSpec {
  readonly id: string
  /** how the test names it (default: its id); two nodes may claim one id */
  readonly key?: string
  readonly priority: number
  /** ids of the nodes it joins through (by their memory address); none = a founding seed */
  readonly join?: readonly string[]
  readonly cluster?: ConfigFileInput['cluster']
  readonly incarnation?: number
  /** this node's own bind address per listener (`node.listenerBinds`) */
  readonly listenerBinds?: Readonly<Record<string, string>>
}

export interface InProcessNode {
  readonly key: string
  readonly id: string
  readonly node: MeshNode
  readonly logs: Record<string, unknown>[]
  running: boolean
}

const port = (i: number) => 20_001 + i

/**
 * Whole MeshNodes in one process: a memory network, one fake clock for all of them, silent logs
 * kept per node for assertions. Nothing listens on a real socket.
 */
export class InProcessCluster {
  readonly clock = new FakeClock()
  readonly network = new MemoryNetwork()
  readonly nodes = new Map<string, InProcessNode>()
  readonly #index = new Map<string, number>()

  async add(spec: InProcessNodeSpec): Promise<InProcessNode> {
    const key = spec.key ?? spec.id
    if (this.nodes.has(key)) throw new Error(`a node named ${key} exists`)
    const i = this.#index.size
    this.#index.set(key, i)
    const config = nodeConfig(
      spec,
      (id) => {
        const j = this.#index.get(id)
        if (j === undefined) throw new Error(`unknown seed ${id}`)
        return `127.0.0.1:${port(j)}`
      },
      i,
    )
    const logs: Record<string, unknown>[] = []
    const logger: Logger = pino(
      { level: 'debug', base: { node: spec.id } },
      { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
    )
    const node = new MeshNode({
      config,
      identity: { privateKey: await generateKeyPair('Ed25519'), incarnation: spec.incarnation ?? 1 },
      psk: undefined,
      logger,
      version: 'test',
      clock: this.clock,
      transport: this.network.factory,
    })
    const n: InProcessNode = { key, id: spec.id, node, logs, running: false }
    this.nodes.set(key, n)
    return n
  }

  async start(key: string): Promise<void> {
    const n = this.get(key)
    await n.node.start()
    n.running = true
  }

  async stop(key: string): Promise<void> {
    const n = this.get(key)
    const stopping = n.node.stop()
    // the stop waits on the node's own clock (the leave's spacing): drive it
    let done = false
    void stopping.finally(() => {
      done = true
    })
    while (!done) await this.clock.advance(10)
    await stopping
    n.running = false
  }

  async stopAll(): Promise<void> {
    for (const n of this.nodes.values()) if (n.running) await this.stop(n.key)
  }

  /** The memory address node `key` listens at. */
  address(key: string): string {
    const i = this.#index.get(key)
    if (i === undefined) throw new Error(`no node ${key}`)
    return `127.0.0.1:${port(i)}`
  }

  get(key: string): InProcessNode {
    const n = this.nodes.get(key)
    if (n === undefined) throw new Error(`no node ${key}`)
    return n
  }

  running(): InProcessNode[] {
    return [...this.nodes.values()].filter((n) => n.running)
  }

  /** The MASTER every running node agrees on, or null while they disagree or there is none. */
  agreedMaster(): string | null {
    const views = this.running().map((n) => n.node.view.master())
    const holders = views.filter((v) => v.master).map((v) => v.node)
    if (holders.length !== 1) return null
    return views.every((v) => v.current === holders[0]) ? holders[0]! : null
  }
}

function nodeConfig(spec: InProcessNodeSpec, address: (id: string) => string, i: number): ConfigFile {
  const r = validateConfig({
    node: {
      id: spec.id,
      priority: spec.priority,
      insecureDev: true,
      gossip: { listen: `127.0.0.1:${port(i)}` },
      join: (spec.join ?? []).map(address),
      joinRetry: { initialMs: 50, maxMs: 500, dialTimeoutMs: 200 },
      ...(spec.listenerBinds === undefined ? {} : { listenerBinds: spec.listenerBinds }),
    },
    cluster: { name: 'inproc', ...(spec.cluster ?? {}) },
  })
  if (!r.ok) throw new Error(`test config invalid: ${JSON.stringify(r.error.issues)}`)
  return r.value
}
