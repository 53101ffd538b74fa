import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Runs `ip ARGS`; rejects with ip's own message. */
export async function ip(...args: string[]): Promise<string> {
  const { stdout } = await run('ip', args, { timeout: 10_000 })
  return stdout
}

export function canRunNetns(): string | null {
  if (process.getuid?.() !== 0) return 'network-namespace tests need root'
  return null
}

export interface LabHost {
  readonly name: string
  readonly netns: string
  /** this host's address on the lab bridge, 198.18.0.x */
  readonly address: string
  /** the veth end left in the root namespace and plugged into the bridge */
  readonly hostVeth: string
}

/**
 * A throw-away L2 network: one bridge in the root namespace (198.18.0.254/24, so the test can reach
 * the hosts), and one namespace per host with `eth0` at 198.18.0.N/24. Names carry a random tag so
 * parallel runs and leftovers never collide; `destroy()` removes all of it.
 */
export class NetnsLab {
  readonly tag = randomBytes(3).toString('hex')
  readonly bridge = `pgbr${this.tag}`
  readonly gateway: string
  readonly hosts = new Map<string, LabHost>()

  /** `subnet`: the first three octets of a /24 inside 198.18.0.0/15, so two labs may coexist */
  constructor(private readonly subnet = '198.18.0') {
    if (!/^198\.1[89]\.\d{1,3}$/.test(subnet))
      throw new Error(`lab subnet ${subnet} is outside 198.18.0.0/15`)
    this.gateway = `${subnet}.254`
  }

  async create(names: readonly string[]): Promise<void> {
    await ip('link', 'add', this.bridge, 'type', 'bridge')
    await ip('addr', 'add', `${this.gateway}/24`, 'dev', this.bridge)
    await ip('link', 'set', this.bridge, 'up')
    let n = 1
    for (const name of names) {
      const host: LabHost = {
        name,
        netns: `pgmesh-${this.tag}-${name}`,
        address: `${this.subnet}.${n}`,
        hostVeth: `pgv${this.tag}${n}`,
      }
      n++
      this.hosts.set(name, host)
      await ip('netns', 'add', host.netns)
      await ip('link', 'add', host.hostVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.netns)
      await ip('link', 'set', host.hostVeth, 'master', this.bridge)
      await ip('link', 'set', host.hostVeth, 'up')
      await ip('-n', host.netns, 'addr', 'add', `${host.address}/24`, 'dev', 'eth0')
      await ip('-n', host.netns, 'link', 'set', 'eth0', 'up')
      await ip('-n', host.netns, 'link', 'set', 'lo', 'up')
    }
  }

  host(name: string): LabHost {
    const h = this.hosts.get(name)
    if (h === undefined) throw new Error(`no lab host ${name}`)
    return h
  }

  /** argv prefix that runs a command inside the host's namespace */
  inside(name: string, argv: readonly string[]): string[] {
    return ['netns', 'exec', this.host(name).netns, ...argv]
  }

  /** Cuts the host off the bridge; its link stays up, so nothing on the host notices but silence. */
  async detach(name: string): Promise<void> {
    await ip('link', 'set', this.host(name).hostVeth, 'nomaster')
  }

  async attach(name: string): Promise<void> {
    await ip('link', 'set', this.host(name).hostVeth, 'master', this.bridge)
  }

  /** IPv4 addresses on the host's eth0. */
  async addresses(name: string): Promise<string[]> {
    const out = await ip('-n', this.host(name).netns, '-o', '-4', 'addr', 'show', 'dev', 'eth0')
    return [...out.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!)
  }

  async destroy(): Promise<void> {
    for (const h of this.hosts.values()) await ip('netns', 'del', h.netns).catch(() => undefined)
    await ip('link', 'del', this.bridge).catch(() => undefined)
    this.hosts.clear()
  }
}
