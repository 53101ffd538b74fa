import {
  type ConfigFile,
  err,
  isIPv6,
  NodeIdSchema,
  ok,
  PrioritySchema,
  parseHostPort,
  pgmeshError,
  type Result,
  validateConfig,
} from '@pgmesh/protocol'
import { stringify } from 'yaml'
import { type HaproxyImport, mapHaproxy, pgmeshName } from './haproxy-mapper.js'
import { parseHaproxy } from './haproxy-parser.js'
import { DEFAULT_GOSSIP_PORT, type KeepalivedImport, mapKeepalived } from './keepalived-mapper.js'
import { parseKeepalived } from './keepalived-parser.js'
import { FILE_NAMES, type ImportNote, sortNotes } from './report.js'

export interface ImportInput {
  /** haproxy.cfg's text */
  readonly haproxy?: string
  /** keepalived.conf's text */
  readonly keepalived?: string
  /** this node's id; default keepalived's router_id */
  readonly nodeId?: string
  /** the founding members other than this node (`--member ID=PRIORITY`), the same list on every host */
  readonly members?: readonly { readonly id: string; readonly priority: number }[]
  readonly clusterName?: string
}

export interface ImportResult {
  /** the pgmesh config file as a document (what the YAML holds) */
  readonly document: Record<string, unknown>
  /** the same document validated: what `pgmesh start` would run */
  readonly config: ConfigFile
  readonly yaml: string
  readonly notes: readonly ImportNote[]
}

/** Where node-local files live in the Debian package's layout (deploy/deb/). */
export const PACKAGE_PATHS = {
  secretFile: '/etc/pgmesh/cluster.secret',
  dataDir: '/var/lib/pgmesh',
} as const

const bad = (message: string) => err(pgmeshError('IMPORT_INVALID', message))

/** A host that reaches a listener bound to `bind` from the same machine. */
function localHost(bind: string): { host: string; port: number } | null {
  const r = parseHostPort(bind, true)
  if (!r.ok || r.value.port === 0) return null
  const { host, port } = r.value
  if (host === '0.0.0.0') return { host: '127.0.0.1', port }
  if (host === '::') return { host: '::1', port }
  return { host, port }
}

const WILDCARDS = new Set(['0.0.0.0', '::'])

/**
 * The cluster section must be the same on every host, and a listener serves on every node. A bind
 * to the VIP (HAProxy with net.ipv4.ip_nonlocal_bind) becomes a bind to all addresses; a bind to
 * this host's own address stays this node's (node.listenerBinds) behind a common wildcard bind.
 */
function commonBinds(
  hap: HaproxyImport,
  vipAddress: string | null,
  listenerBinds: Record<string, string>,
  notes: ImportNote[],
): void {
  const vipIp = vipAddress?.split('/')[0] ?? null
  for (const l of hap.listeners) {
    const r = parseHostPort(l.bind, true)
    if (!r.ok || WILDCARDS.has(r.value.host)) continue
    const { host, port } = r.value
    const wildcard = isIPv6(host) ? `[::]:${port}` : `0.0.0.0:${port}`
    const at = hap.bindLines.get(l.name)
    const note = (reason: string) =>
      notes.push({
        source: 'haproxy',
        kind: 'review',
        line: at?.line ?? 0,
        directive: at?.directive ?? '',
        reason,
      })
    if (host === vipIp) {
      note(
        `bound to the VIP: pgmesh serves every listener on every node, so it listens on ${wildcard} and clients of the VIP reach the MASTER (no ip_nonlocal_bind needed)`,
      )
    } else {
      listenerBinds[l.name] = l.bind
      note(
        `${host} is this host's own address: the cluster listener binds ${wildcard} (the same on every host) and node.listenerBinds.${l.name} keeps ${l.bind} for this node`,
      )
    }
    l.bind = wildcard
  }
}

/**
 * Turns haproxy.cfg and/or keepalived.conf into a pgmesh config file. Pure: texts in, a validated
 * document, its YAML and the report out; every error names the file and line.
 */
export function importConfig(input: ImportInput): Result<ImportResult> {
  if (input.haproxy === undefined && input.keepalived === undefined) {
    return bad('nothing to import: give haproxy.cfg, keepalived.conf or both')
  }
  const notes: ImportNote[] = []
  const fileNote = (source: ImportNote['source'], reason: string) =>
    notes.push({ source, kind: 'review', line: 0, directive: '', reason })

  let hap: HaproxyImport = { listeners: [], databases: [], notes: [], bindLines: new Map() }
  if (input.haproxy !== undefined) {
    const parsed = parseHaproxy(input.haproxy)
    if (!parsed.ok) return parsed
    const mapped = mapHaproxy(parsed.value)
    if (!mapped.ok) return mapped
    hap = mapped.value
    notes.push(...hap.notes)
  }

  let kad: KeepalivedImport | null = null
  const listenerBinds: Record<string, string> = {}
  if (input.keepalived === undefined) commonBinds(hap, null, listenerBinds, notes)
  else {
    const parsed = parseKeepalived(input.keepalived)
    if (!parsed.ok) return parsed
    // a first pass for the VIP, which decides how host-specific binds are carried over
    const first = mapKeepalived(parsed.value)
    if (!first.ok) return first
    commonBinds(hap, first.value.vipAddress, listenerBinds, notes)
    const own = hap.listeners.find((l) => l.role === 'primary') ?? hap.listeners[0]
    const ownAt = own === undefined ? null : localHost(own.bind)
    const mapped = mapKeepalived(
      parsed.value,
      own !== undefined && ownAt !== null ? { ownListener: { name: own.name, ...ownAt } } : {},
    )
    if (!mapped.ok) return mapped
    kad = mapped.value
    notes.push(...kad.notes)
  }

  const rawId = input.nodeId ?? kad?.routerId ?? null
  if (rawId === null) {
    return bad('no node id: pass --node-id ID (keepalived.conf has no global_defs { router_id })')
  }
  if (!NodeIdSchema.safeParse(rawId).success) {
    if (input.nodeId !== undefined)
      return bad(`--node-id '${rawId}' must be 1-63 characters: letters, digits, _ . -`)
    fileNote(
      'keepalived',
      `router_id '${rawId}' is not a pgmesh node id; it became '${pgmeshName(rawId, 'node-1')}'`,
    )
  }
  const id = input.nodeId ?? pgmeshName(rawId, 'node-1')
  const priority = kad?.priority ?? 100

  const members: { id: string; priority: number }[] = []
  for (const m of input.members ?? []) {
    if (!NodeIdSchema.safeParse(m.id).success)
      return bad(`--member '${m.id}': the id must be 1-63 characters: letters, digits, _ . -`)
    if (!PrioritySchema.safeParse(m.priority).success)
      return bad(`--member ${m.id}: the priority must be 1-254`)
    if (m.id === id) {
      if (m.priority !== priority) {
        return bad(`--member ${m.id}=${m.priority}: this node's priority is ${priority} (keepalived.conf)`)
      }
      continue
    }
    if (members.some((x) => x.id === m.id)) return bad(`--member ${m.id} is given twice`)
    members.push({ id: m.id, priority: m.priority })
  }
  if (members.length > 0) {
    members.push({ id, priority })
    // the same order whichever host runs the import: the cluster section must be identical
    // everywhere, or the founding nodes start with conflicting configs
    members.sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  } else if ((kad?.join.length ?? 0) > 0) {
    fileNote(
      'keepalived',
      'cluster.members is empty: list the founding proxies with --member ID=PRIORITY (the same list on every host), or no node founds the cluster (every node only joins)',
    )
  }

  const node: Record<string, unknown> = {
    id,
    priority,
    gossip: {
      listen: `0.0.0.0:${DEFAULT_GOSSIP_PORT}`,
      ...(kad?.advertise === null || kad === null ? {} : { advertise: kad.advertise }),
    },
    api: { listen: '127.0.0.1:7947' },
    ...(kad !== null && kad.join.length > 0 ? { join: kad.join } : {}),
    ...(Object.keys(listenerBinds).length > 0 ? { listenerBinds } : {}),
    secretFile: PACKAGE_PATHS.secretFile,
    dataDir: PACKAGE_PATHS.dataDir,
  }
  fileNote(
    input.keepalived !== undefined ? 'keepalived' : 'haproxy',
    `node.secretFile is ${PACKAGE_PATHS.secretFile}: create it once with \`pgmesh keygen --out ${PACKAGE_PATHS.secretFile}\` and copy it to every node (mode 600)`,
  )

  const cluster: Record<string, unknown> = {}
  if (input.clusterName !== undefined) cluster.name = input.clusterName
  if (members.length > 0) cluster.members = members
  if (kad !== null) {
    if (Object.keys(kad.election).length > 0) cluster.election = kad.election
    if (kad.checks.length > 0) cluster.checks = kad.checks
    const vip: Record<string, unknown> = {}
    const notify = Object.fromEntries(Object.entries(kad.notify).filter(([, v]) => v !== undefined))
    if (kad.vipAddress !== null) vip.address = kad.vipAddress
    if (kad.vipAddress !== null && kad.interface !== null) {
      vip.driver = 'linux'
      node.vip = { interface: kad.interface }
    } else if (notify.master !== undefined) {
      vip.driver = 'exec'
      fileNote(
        'keepalived',
        'no VIP on an interface: the exec driver runs the notify scripts, which move the address',
      )
    } else if (kad.vipAddress !== null) {
      fileNote(
        'keepalived',
        'the VIP has no interface: the none driver only records the MASTER; set node.vip.interface and vip.driver linux',
      )
    }
    if (Object.keys(notify).length > 0) vip.notify = notify
    if (kad.garpCount !== null) vip.garpCount = kad.garpCount
    if (Object.keys(vip).length > 0) cluster.vip = vip
  }
  if (hap.listeners.length > 0) cluster.listeners = hap.listeners
  if (hap.databases.length > 0) {
    cluster.databases = hap.databases
    fileNote(
      'haproxy',
      'pgmesh asks each database itself whether it takes writes (databaseChecks.use: postgres, patroni): set databaseChecks.user and passwordFile to a role that may connect (docs/configuration.md); HAProxy asked only Patroni',
    )
  }

  const document = { node, cluster }
  const valid = validateConfig(document)
  if (!valid.ok) {
    return err(
      pgmeshError(
        'IMPORT_INVALID',
        `the imported config does not validate (${valid.error.issues?.length ?? 0} problem(s)); fix the source files or edit the output`,
        valid.error.issues,
      ),
    )
  }
  const sorted = sortNotes(notes)
  return ok({ document, config: valid.value, yaml: renderYaml(document, sorted), notes: sorted })
}

/** The config as YAML, headed by the notes that need the operator's eye. */
function renderYaml(document: Record<string, unknown>, notes: readonly ImportNote[]): string {
  const review = notes.filter((n) => n.kind === 'review')
  const unmapped = notes.length - review.length
  const head = [
    '# pgmesh config written by `pgmesh import`; check it with `pgmesh config check FILE`.',
    `# ${unmapped} directive(s) were not carried over (the import's report lists them with the reason).`,
    ...(review.length > 0 ? ['# Review before use:'] : []),
    ...review.map((n) => {
      const where = n.line === 0 ? FILE_NAMES[n.source] : `${FILE_NAMES[n.source]}:${n.line}`
      return `#   ${where}: ${n.reason}`.replace(/\n/g, ' ')
    }),
  ]
  return `${head.join('\n')}\n${stringify(document, { lineWidth: 0 })}`
}
