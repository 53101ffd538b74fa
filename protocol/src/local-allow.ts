import { cidrContains, parseCidr, parseIp } from './cidr.js'
import type { ClusterConfig, NodeAllow } from './config.js'
import { err, type Issue, ok, pgmeshError, type Result } from './errors.js'

/** What one node allows the cluster config to make it do: its `node.allow` and its own file. */
export interface NodeLocalPolicy {
  readonly allow: NodeAllow
  /**
   * the cluster section of this node's own config file, if any: an argv written there was put on
   * this host by its operator, so the same argv is allowed without listing the program
   */
  readonly fileCluster?: ClusterConfig | null
}

/** Every argv a cluster config would run on a node: exec checks and notify scripts, by path. */
export function commandsOf(cluster: ClusterConfig): { path: string; argv: readonly string[] }[] {
  const out: { path: string; argv: readonly string[] }[] = []
  cluster.checks.forEach((c, i) => {
    if (c.kind === 'exec') out.push({ path: `checks.${i}.command`, argv: c.command })
  })
  const notify = cluster.vip.notify
  for (const k of ['master', 'backup', 'fault', 'stop'] as const) {
    const argv = notify[k]
    if (argv !== undefined) out.push({ path: `vip.notify.${k}`, argv })
  }
  return out
}

const argvKey = (argv: readonly string[]) => JSON.stringify(argv)

/**
 * Decides whether a program may run on this node. Allowed: its program (argv[0]) is in
 * `allow.commands`, or this exact argv is in the node's own config file.
 */
export class CommandAllowance {
  readonly #programs: ReadonlySet<string>
  readonly #fileArgv: ReadonlySet<string>

  constructor(policy: NodeLocalPolicy) {
    this.#programs = new Set(policy.allow.commands)
    this.#fileArgv = new Set(
      policy.fileCluster == null ? [] : commandsOf(policy.fileCluster).map((c) => argvKey(c.argv)),
    )
  }

  allows(argv: readonly string[]): boolean {
    const program = argv[0]
    if (program === undefined) return false
    return this.#programs.has(program) || this.#fileArgv.has(argvKey(argv))
  }

  /** why `argv` is refused, for logs and API answers */
  refusal(argv: readonly string[]): string {
    return `program ${JSON.stringify(argv[0] ?? '')} is not in node.allow.commands on this node, and this argv is not in its own config file`
  }
}

/** A refused backend or VIP address, or null when allowed. */
function addressRefusal(
  host: string,
  cidrs: readonly string[] | undefined,
  hosts: readonly string[],
  field: string,
): string | null {
  if (cidrs === undefined) return null
  const ip = parseIp(host)
  if (ip === null) {
    const name = host.toLowerCase()
    return hosts.some((h) => h.toLowerCase() === name)
      ? null
      : `host name "${host}" is not in node.allow.backendHosts on this node (node.allow.${field} is set)`
  }
  const nets = cidrs.map(parseCidr).filter((c) => c !== null)
  return nets.some((n) => cidrContains(n, ip))
    ? null
    : `${host} is outside node.allow.${field} (${cidrs.join(', ') || 'empty'}) on this node`
}

function urlHost(url: string): string | null {
  try {
    const h = new URL(url).hostname
    return h.startsWith('[') ? h.slice(1, -1) : h
  } catch {
    return null
  }
}

/**
 * Checks a (schema-valid) cluster config against what this node allows, before the node adopts it
 * (and at start). Each refused program or address is an issue with its path; the error code is
 * CONFIG_NOT_ALLOWED. Pure: no DNS, no file system.
 */
export function checkClusterAgainstLocal(cluster: ClusterConfig, local: NodeLocalPolicy): Result<void> {
  const issues: Issue[] = []
  const commands = new CommandAllowance(local)
  for (const c of commandsOf(cluster)) {
    if (!commands.allows(c.argv))
      issues.push({ path: `cluster.${c.path}`, message: commands.refusal(c.argv) })
  }
  const { backendCidrs, backendHosts, vipCidrs } = local.allow
  const backend = (path: string, host: string) => {
    const why = addressRefusal(host, backendCidrs, backendHosts, 'backendCidrs')
    if (why !== null) issues.push({ path: `cluster.${path}`, message: why })
  }
  cluster.databases.forEach((d, i) => {
    backend(`databases.${i}.address`, d.address.host)
    if (d.patroniUrl !== undefined) {
      const h = urlHost(d.patroniUrl)
      backend(`databases.${i}.patroniUrl`, h ?? d.patroniUrl)
    }
  })
  cluster.listeners.forEach((l, i) => {
    l.servers.forEach((s, j) => {
      backend(`listeners.${i}.servers.${j}.address`, s.address.host)
    })
  })
  const vip = cluster.vip.address
  if (vip !== undefined) {
    const why = addressRefusal(vip.ip, vipCidrs, [], 'vipCidrs')
    if (why !== null) issues.push({ path: 'cluster.vip.address', message: why })
  }
  if (issues.length === 0) return ok(undefined)
  return err(
    pgmeshError(
      'CONFIG_NOT_ALLOWED',
      `the cluster config asks for ${issues.length} thing(s) this node's own config does not allow`,
      issues,
    ),
  )
}
