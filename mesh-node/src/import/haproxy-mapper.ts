import {
  BALANCE,
  type DatabaseConfigSchema,
  err,
  isIPv6,
  type ListenerConfigInput,
  ok,
  parseHostPort,
  pgmeshError,
  type Result,
} from '@pgmesh/protocol'
import type { z } from 'zod'
import type { HaproxyLine, HaproxySection } from './haproxy-parser.js'
import type { ImportNote } from './report.js'
import { haproxyTimeMs, intIn, patroniLagBytes } from './units.js'

export type DatabaseInput = z.input<typeof DatabaseConfigSchema>

export interface HaproxyImport {
  readonly listeners: ListenerConfigInput[]
  readonly databases: DatabaseInput[]
  readonly notes: ImportNote[]
  /** where each listener's bind address came from: listener name → the `bind` line */
  readonly bindLines: ReadonlyMap<string, { readonly line: number; readonly directive: string }>
}

/** Patroni REST endpoints an HAProxy check may ask, and the pgmesh role that answers the same question. */
const PATRONI_ROLES: Record<string, 'primary' | 'replica' | 'any'> = {
  '/primary': 'primary',
  '/master': 'primary',
  '/read-write': 'primary',
  '/leader': 'primary',
  '/replica': 'replica',
  '/read-only': 'any',
}

/** Why a directive is not carried over, by keyword (the first word, or the first two for `option` and `timeout`). */
const REASONS: Record<string, string> = {
  log: 'pgmesh logs JSON lines to stdout (pino, node.logLevel); point the journal or a collector at them',
  'option tcplog': 'pgmesh logs JSON lines to stdout (pino, node.logLevel)',
  'option httplog': 'pgmesh logs JSON lines to stdout (pino, node.logLevel)',
  'option dontlognull': 'pgmesh logs JSON lines to stdout (pino, node.logLevel)',
  'option log-health-checks': 'pgmesh logs database state changes, not every probe',
  retries:
    'pgmesh retries on its own terms: a role listener keeps trying until queueTimeoutMs, a `servers` listener tries the next server once and skips the failed one for a moment',
  'option redispatch':
    'pgmesh always redispatches: a failed connect goes to the next server (`servers`) or waits for a backend (role listeners)',
  'option tcpka': 'pgmesh sets TCP keepalive on both sides of every session (keepAliveMs, default 60000)',
  'option clitcpka': 'pgmesh sets TCP keepalive on both sides of every session (keepAliveMs, default 60000)',
  'option srvtcpka': 'pgmesh sets TCP keepalive on both sides of every session (keepAliveMs, default 60000)',
  'option tcp-check':
    'pgmesh runs no health checks against the servers of a `servers` listener; role listeners use databaseChecks',
  'tcp-check': 'pgmesh runs no health checks against the servers of a `servers` listener',
  'option pgsql-check':
    'pgmesh checks every database itself (databaseChecks.use: postgres); without a Patroni role check the role is unknown',
  'timeout check':
    'database check timings are not carried over: pgmesh checks every 250 ms by default (databaseChecks.timeoutMs, intervalMs)',
  'timeout client-fin': 'pgmesh has one idle timeout per listener (idleTimeoutMs) and relays half-closes',
  'timeout server-fin': 'pgmesh has one idle timeout per listener (idleTimeoutMs) and relays half-closes',
  'timeout http-request': 'pgmesh proxies TCP only',
  'timeout http-keep-alive': 'pgmesh proxies TCP only',
  stats:
    'the HAProxy stats page: pgmesh serves its status page at GET / and Prometheus metrics at GET /metrics',
  fullconn: 'pgmesh has per-listener and per-backend maxconn only',
  backlog: 'the listen backlog is the kernel default',
  'http-check':
    'only `http-check expect status 200` and `http-check send … uri` on a Patroni endpoint are understood',
  acl: 'pgmesh routes by role or by a server list, not by ACLs',
  use_backend:
    'pgmesh routes by role or by a server list, not by ACLs: one backend per listener (default_backend)',
  'tcp-request': 'tcp-request rules are not carried over: restate them as pgmesh listener settings by hand',
  'tcp-response': 'pgmesh has no tcp-response rules',
  'option allbackups': 'pgmesh picks servers by role; backup servers are not carried over',
  hash_type: 'pgmesh `source` balancing uses its own hash',
  cookie: 'pgmesh proxies TCP only',
}

const GLOBAL_REASON =
  'process-wide HAProxy setting: pgmesh is configured per node (node section) and per listener'

interface ServerParams {
  check: boolean
  port?: number
  addr?: string
  maxconn?: number
  weight?: number
  ssl?: boolean
  backup?: boolean
  disabled?: boolean
}

/** Server parameters that take a value (HAProxy configuration manual, section 5.2). */
const VALUE_PARAMS = new Set([
  'port',
  'addr',
  'inter',
  'fastinter',
  'downinter',
  'fall',
  'rise',
  'maxconn',
  'minconn',
  'maxqueue',
  'weight',
  'on-marked-down',
  'on-marked-up',
  'on-error',
  'slowstart',
  'resolvers',
  'init-addr',
  'resolve-prefer',
  'resolve-net',
  'cookie',
  'id',
  'agent-port',
  'agent-inter',
  'agent-addr',
  'agent-send',
  'error-limit',
  'observe',
  'source',
  'ca-file',
  'crt',
  'sni',
  'verify',
  'verifyhost',
  'ciphers',
  'ciphersuites',
  'alpn',
  'check-sni',
  'check-alpn',
  'pool-max-conn',
  'pool-purge-delay',
  'pool-low-conn',
  'max-reuse',
  'namespace',
  'proto',
  'redir',
  'track',
  'tcp-ut',
  'usesrc',
  'check-proto',
  'log-proto',
  'ws',
  'shard',
  'hash-key',
  'crl-file',
  'ssl-min-ver',
  'ssl-max-ver',
  'npn',
  'set-proxy-v2-tlv-fmt',
  'proxy-v2-options',
  'guid',
  'init-state',
])
/** Parameters whose effect pgmesh has by design; they are consumed without a note. */
const IMPLIED_PARAMS: Record<string, string> = {
  'on-marked-down': 'shutdown-sessions',
}
/** Check timings: deliberately not carried over (the report says why once per line). */
const CHECK_TIMING_PARAMS = new Set(['inter', 'fastinter', 'downinter', 'fall', 'rise'])

interface Ctx {
  readonly notes: ImportNote[]
  /** lines whose directive was carried over or already has a note */
  readonly handled: Set<number>
}

const words = (d: HaproxyLine) => d.words.join(' ')

function note(ctx: Ctx, d: HaproxyLine, kind: ImportNote['kind'], reason: string): void {
  ctx.notes.push({ source: 'haproxy', kind, line: d.line, directive: words(d), reason })
  ctx.handled.add(d.line)
}

const invalid = (d: HaproxyLine, message: string) =>
  err(pgmeshError('IMPORT_INVALID', `haproxy.cfg line ${d.line}: '${words(d)}': ${message}`))

/** `*:5000`, `:5000`, `10.0.0.1:5000`, `:::5000`, `ipv6@[::1]:5000` → a pgmesh listen address. */
export function haproxyBindAddress(spec: string): string | null {
  let s = spec.replace(/^(ipv4|ipv6|tcp|tcp4|tcp6)@/, '')
  if (s.startsWith('[')) return parseHostPort(s, true).ok ? s : null
  const colon = s.lastIndexOf(':')
  if (colon < 0) return null
  let host = s.slice(0, colon)
  const port = s.slice(colon + 1)
  if (!/^\d{1,5}$/.test(port)) return null
  if (host === '' || host === '*') host = '0.0.0.0'
  s = isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`
  return parseHostPort(s, true).ok ? s : null
}

/** A server's `host[:port]`; the port may be missing (HAProxy then uses the client's destination port). */
function serverAddress(spec: string): { host: string; port: number | null } | null {
  const s = spec.replace(/^(ipv4|ipv6)@/, '')
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s)
  if (bracket !== null) {
    return isIPv6(bracket[1]!)
      ? { host: bracket[1]!, port: bracket[2] === undefined ? null : Number(bracket[2]) }
      : null
  }
  const colons = s.split(':').length - 1
  let host = s
  let port: number | null = null
  if (colons === 1 || (colons > 1 && !isIPv6(s))) {
    const i = s.lastIndexOf(':')
    host = s.slice(0, i)
    if (!/^\d{1,5}$/.test(s.slice(i + 1))) return null
    port = Number(s.slice(i + 1))
  }
  if (port !== null && (port < 1 || port > 65_535)) return null
  const probe = isIPv6(host) ? `[${host}]:1` : `${host}:1`
  return parseHostPort(probe).ok ? { host, port } : null
}

const hostPort = (host: string, port: number) => (isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`)

/** Reads `server`/`default-server` parameters into `into`; unknown or unmapped ones become notes. */
function readServerParams(
  ctx: Ctx,
  d: HaproxyLine,
  params: readonly string[],
  into: ServerParams,
): Result<void> {
  const unmapped: string[] = []
  let timings = false
  for (let i = 0; i < params.length; i++) {
    const p = params[i]!
    const takesValue = VALUE_PARAMS.has(p)
    const v = takesValue ? params[++i] : undefined
    if (takesValue && v === undefined) return invalid(d, `'${p}' needs a value`)
    switch (p) {
      case 'check':
        into.check = true
        break
      case 'no-check':
        into.check = false
        break
      case 'check-ssl':
        into.ssl = true
        break
      case 'backup':
        into.backup = true
        break
      case 'disabled':
        into.disabled = true
        break
      case 'enabled':
        into.disabled = false
        break
      case 'port': {
        const n = intIn(v, 1, 65_535)
        if (n === null) return invalid(d, `port '${v}' is not 1-65535`)
        into.port = n
        break
      }
      case 'addr':
        if (serverAddress(v!) === null) return invalid(d, `addr '${v}' is not an address`)
        into.addr = v!
        break
      case 'maxconn': {
        const n = intIn(v, 0, 100_000)
        if (n === null) return invalid(d, `maxconn '${v}' is not 0-100000`)
        if (n > 0) into.maxconn = n
        break
      }
      case 'weight': {
        const n = intIn(v, 0, 256)
        if (n === null) return invalid(d, `weight '${v}' is not 0-256`)
        into.weight = n
        break
      }
      default:
        if (CHECK_TIMING_PARAMS.has(p)) {
          if (haproxyTimeMs(v!) === null && intIn(v, 0, 1_000_000) === null) {
            return invalid(d, `${p} '${v}' is not a time or a count`)
          }
          timings = true
        } else if (IMPLIED_PARAMS[p] !== v) {
          unmapped.push(takesValue ? `${p} ${v}` : p)
        }
    }
  }
  const reasons: string[] = []
  if (timings) {
    reasons.push(
      "check timings (inter/fall/rise) are not carried over: pgmesh checks every database every 250 ms and asks the database itself (databaseChecks.intervalMs, rise, fall); HAProxy's `inter 3s rise 2` is what made failover take 3-6 s",
    )
  }
  if (unmapped.length > 0) reasons.push(`parameters not carried over: ${unmapped.join(', ')}`)
  if (reasons.length > 0) note(ctx, d, 'unmapped', reasons.join('; '))
  return ok(undefined)
}

/** The settings a proxy section inherits from `defaults` or sets itself. */
interface ProxySettings {
  mode: string
  balance?: { value: (typeof BALANCE)[number]; d: HaproxyLine }
  maxconn?: number
  timeouts: Map<string, { ms: number; d: HaproxyLine }>
  httpchk?: { uri: string | null; d: HaproxyLine }
  checkSend?: { uri: string; d: HaproxyLine }
  expect?: { ok: boolean; d: HaproxyLine }
  serverDefaults: ServerParams
}

const freshSettings = (): ProxySettings => ({
  mode: 'tcp',
  timeouts: new Map(),
  serverDefaults: { check: false },
})

const cloneSettings = (s: ProxySettings): ProxySettings => ({
  ...s,
  timeouts: new Map(s.timeouts),
  serverDefaults: { ...s.serverDefaults },
})

const TIMEOUTS = new Set(['connect', 'client', 'server', 'queue', 'tunnel'])

/**
 * Reads one directive that may appear in `defaults` and in proxies. Returns false when the
 * directive is not one of these (the caller handles it).
 */
function readCommon(ctx: Ctx, d: HaproxyLine, s: ProxySettings): Result<boolean> {
  const [kw, a, b] = d.words
  switch (kw) {
    case 'mode':
      if (a !== 'tcp' && a !== 'http' && a !== 'log')
        return invalid(d, `mode '${a ?? ''}' is not tcp, http or log`)
      s.mode = a
      ctx.handled.add(d.line)
      return ok(true)
    case 'balance': {
      const value = a === 'static-rr' ? 'roundrobin' : a
      if (!(BALANCE as readonly (string | undefined)[]).includes(value)) {
        note(
          ctx,
          d,
          'unmapped',
          `pgmesh balances ${BALANCE.join(', ')}; the listener keeps the default roundrobin`,
        )
        return ok(true)
      }
      s.balance = { value: value as (typeof BALANCE)[number], d }
      if (a === 'static-rr')
        note(ctx, d, 'review', 'static-rr became roundrobin (weights apply the same way)')
      else ctx.handled.add(d.line)
      return ok(true)
    }
    case 'maxconn': {
      const n = intIn(a, 1, 1_000_000)
      if (n === null) return invalid(d, `maxconn '${a ?? ''}' is not 1-1000000`)
      s.maxconn = n
      ctx.handled.add(d.line)
      return ok(true)
    }
    case 'timeout': {
      if (a === undefined || b === undefined) return invalid(d, 'timeout needs a name and a value')
      if (!TIMEOUTS.has(a)) return ok(false)
      const ms = haproxyTimeMs(b)
      if (ms === null) return invalid(d, `'${b}' is not a time (a number with us, ms, s, m, h or d)`)
      s.timeouts.set(a, { ms, d })
      ctx.handled.add(d.line)
      return ok(true)
    }
    case 'option':
      if (a === 'httpchk') {
        const rest = d.words.slice(2)
        // one argument is the URI; two or more are METHOD URI [VERSION]
        const uri = rest.length === 0 ? null : rest.length === 1 ? rest[0]! : rest[1]!
        s.httpchk = { uri, d }
        ctx.handled.add(d.line)
        return ok(true)
      }
      return ok(false)
    case 'http-check':
      if (a === 'expect') {
        const rest = d.words.slice(2)
        const okExpect = rest.length === 2 && rest[0] === 'status' && rest[1] === '200'
        s.expect = { ok: okExpect, d }
        if (okExpect) ctx.handled.add(d.line)
        return ok(true)
      }
      if (a === 'send') {
        const i = d.words.indexOf('uri')
        const uri = i > 0 ? d.words[i + 1] : undefined
        if (uri !== undefined) {
          s.checkSend = { uri, d }
          ctx.handled.add(d.line)
          return ok(true)
        }
      }
      return ok(false)
    case 'default-server': {
      const r = readServerParams(ctx, d, d.words.slice(1), s.serverDefaults)
      if (!r.ok) return r
      ctx.handled.add(d.line)
      return ok(true)
    }
    default:
      return ok(false)
  }
}

interface Server {
  readonly name: string
  readonly host: string
  readonly port: number
  readonly params: ServerParams
  readonly d: HaproxyLine
}

interface Proxy {
  readonly section: HaproxySection
  readonly settings: ProxySettings
  binds: { address: string; d: HaproxyLine }[]
  servers: Server[]
  defaultBackend?: { name: string; d: HaproxyLine }
}

function readProxy(ctx: Ctx, section: HaproxySection, inherited: ProxySettings): Result<Proxy> {
  const p: Proxy = { section, settings: cloneSettings(inherited), binds: [], servers: [] }
  for (const d of section.directives) {
    const common = readCommon(ctx, d, p.settings)
    if (!common.ok) return common
    if (common.value) continue
    const [kw, a] = d.words
    if (kw === 'bind') {
      if (a === undefined) return invalid(d, 'bind needs an address')
      const specs = a.split(',')
      for (const spec of specs) {
        const address = haproxyBindAddress(spec)
        if (address === null) {
          if (/^\d+-\d+$/.test(spec.split(':').at(-1) ?? ''))
            return invalid(d, `port ranges ('${spec}') are not supported`)
          if (spec.startsWith('/') || spec.startsWith('unix@') || spec.startsWith('abns@')) {
            note(ctx, d, 'unmapped', `'${spec}': pgmesh listens on TCP addresses only`)
            continue
          }
          return invalid(d, `'${spec}' is not an address with a port`)
        }
        p.binds.push({ address, d })
      }
      const options = d.words.slice(2)
      if (options.length > 0) {
        note(
          ctx,
          d,
          'unmapped',
          `bind options not carried over: ${options.join(' ')} (TLS: see the listener's tls settings in docs/configuration.md)`,
        )
      } else {
        ctx.handled.add(d.line)
      }
    } else if (kw === 'server') {
      const [, name, addr, ...params] = d.words
      if (name === undefined || addr === undefined) return invalid(d, 'server needs a name and an address')
      const where = serverAddress(addr)
      if (where === null) return invalid(d, `'${addr}' is not a host or host:port`)
      const sp: ServerParams = { ...p.settings.serverDefaults }
      const r = readServerParams(ctx, d, params, sp)
      if (!r.ok) return r
      let port = where.port
      if (port === null) {
        const bindPort = Number(p.binds[0]?.address.split(':').at(-1) ?? Number.NaN)
        if (!(bindPort >= 1))
          return invalid(d, 'the server has no port, and the section binds no port to take it from')
        port = bindPort
        note(
          ctx,
          d,
          'review',
          `no port: HAProxy uses the client's destination port; pgmesh uses ${port}, the bind port`,
        )
      }
      if (sp.backup === true) {
        note(
          ctx,
          d,
          'unmapped',
          'backup servers are not carried over: pgmesh picks servers by role (or takes every server of the list)',
        )
        continue
      }
      p.servers.push({ name, host: where.host, port, params: sp, d })
      ctx.handled.add(d.line)
    } else if (kw === 'default_backend') {
      if (a === undefined) return invalid(d, 'default_backend needs a backend name')
      p.defaultBackend = { name: a, d }
      ctx.handled.add(d.line)
    }
  }
  return ok(p)
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/

/** A pgmesh name from an HAProxy or server name (letters, digits, _ . -; 63 at most). */
export function pgmeshName(raw: string, fallback: string): string {
  const s = raw
    .replace(/[^A-Za-z0-9_.-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63)
  return NAME_RE.test(s) ? s : fallback
}

/** The Patroni role a check asks about, or why the check is not one. */
function patroniRole(
  s: ProxySettings,
):
  | { role: 'primary' | 'replica' | 'any'; lagBytes?: number; d: HaproxyLine }
  | { why: string; d: HaproxyLine }
  | null {
  const uri = s.checkSend?.uri ?? s.httpchk?.uri ?? null
  const d = s.checkSend?.d ?? s.httpchk?.d
  if (d === undefined) return null
  if (uri === null) return { why: '`option httpchk` without a Patroni endpoint (/primary, /replica, …)', d }
  const [path = '', query = ''] = uri.split('?', 2)
  const role = PATRONI_ROLES[path.replace(/\/+$/, '') || '/']
  if (role === undefined) {
    return {
      why: `'${path}' is not a Patroni role endpoint pgmesh maps (${Object.keys(PATRONI_ROLES).join(', ')})`,
      d,
    }
  }
  let lagBytes: number | undefined
  for (const kv of query.split('&').filter((x) => x !== '')) {
    const [k, v = ''] = kv.split('=', 2)
    if (k === 'lag' && role !== 'primary') {
      const n = patroniLagBytes(decodeURIComponent(v))
      if (n === null) return { why: `lag '${v}' is not a size (bytes, or with kB/MB/GB/TB)`, d }
      lagBytes = n
    } else {
      return { why: `the query parameter '${k}' has no pgmesh counterpart`, d }
    }
  }
  return lagBytes === undefined ? { role, d } : { role, lagBytes, d }
}

const TIMEOUT_BOUNDS = {
  connectTimeoutMs: [1, 600_000],
  idleTimeoutMs: [100, 86_400_000],
  queueTimeoutMs: [1, 3_600_000],
} as const

/**
 * Maps haproxy.cfg sections to pgmesh listeners and databases. TCP `listen` sections and
 * `frontend` + `default_backend` pairs become listeners; servers behind a Patroni role check
 * (`option httpchk /primary`, `/replica`) become `databases`, checked on their check port.
 */
export function mapHaproxy(sections: readonly HaproxySection[]): Result<HaproxyImport> {
  const ctx: Ctx = { notes: [], handled: new Set() }
  let defaults = freshSettings()
  const defaultsLines: HaproxyLine[] = []
  const frontends: Proxy[] = []
  const backends = new Map<string, Proxy>()
  const listens: Proxy[] = []
  for (const section of sections) {
    switch (section.kind) {
      case 'global':
        for (const d of section.directives) note(ctx, d, 'unmapped', GLOBAL_REASON)
        break
      case 'defaults': {
        // each proxy takes the last defaults section above it (named defaults and `from` aside)
        defaults = freshSettings()
        if (section.extra.length > 0) {
          ctx.notes.push({
            source: 'haproxy',
            kind: 'review',
            line: section.line,
            directive: ['defaults', section.name, ...section.extra].join(' '),
            reason: '`from` is not followed: this defaults section is read on its own',
          })
        }
        for (const d of section.directives) {
          const r = readCommon(ctx, d, defaults)
          if (!r.ok) return r
          defaultsLines.push(d)
        }
        break
      }
      case 'frontend':
      case 'backend':
      case 'listen': {
        const r = readProxy(ctx, section, defaults)
        if (!r.ok) return r
        if (r.value.settings.mode !== 'tcp') {
          ctx.notes.push({
            source: 'haproxy',
            kind: 'unmapped',
            line: section.line,
            directive: `${section.kind} ${section.name}`,
            reason: `mode ${r.value.settings.mode}: pgmesh proxies TCP only (its status page is GET /, metrics GET /metrics)`,
          })
          for (const d of section.directives) ctx.handled.add(d.line)
          break
        }
        if (section.kind === 'frontend') frontends.push(r.value)
        else if (section.kind === 'backend') backends.set(section.name, r.value)
        else listens.push(r.value)
        break
      }
      default:
        ctx.notes.push({
          source: 'haproxy',
          kind: 'unmapped',
          line: section.line,
          directive: `${section.kind} ${section.name}`.trim(),
          reason: `a '${section.kind}' section has no pgmesh counterpart`,
        })
        for (const d of section.directives) ctx.handled.add(d.line)
    }
  }

  const listeners: ListenerConfigInput[] = []
  const databases: DatabaseInput[] = []
  const dbByAddress = new Map<string, DatabaseInput>()
  const usedBackends = new Set<string>()
  const bindLines = new Map<string, { line: number; directive: string }>()

  const addDatabase = (srv: Server, checkTls: boolean): Result<void> => {
    const address = hostPort(srv.host, srv.port)
    const known = dbByAddress.get(address)
    if (known !== undefined) return ok(undefined)
    let name = pgmeshName(srv.name, `db${databases.length + 1}`)
    if (databases.some((x) => x.name === name)) name = `${name}-${databases.length + 1}`
    const db: DatabaseInput = { name, address }
    const checkPort = srv.params.port
    const checkHost = srv.params.addr ?? srv.host
    if (checkPort !== undefined) {
      db.patroniUrl = `${checkTls || srv.params.ssl === true ? 'https' : 'http'}://${isIPv6(checkHost) ? `[${checkHost}]` : checkHost}:${checkPort}`
    } else {
      note(
        ctx,
        srv.d,
        'review',
        'the Patroni check has no `port`: it asks the database port itself; set databases[].patroniUrl to the Patroni REST API',
      )
    }
    if (srv.params.maxconn !== undefined) db.maxconn = srv.params.maxconn
    if (srv.params.weight !== undefined) db.weight = srv.params.weight
    databases.push(db)
    dbByAddress.set(address, db)
    return ok(undefined)
  }

  const toListener = (front: Proxy, back: Proxy, name: string): Result<ListenerConfigInput | null> => {
    const bind = front.binds[0]
    if (bind === undefined) {
      ctx.notes.push({
        source: 'haproxy',
        kind: 'unmapped',
        line: front.section.line,
        directive: `${front.section.kind} ${front.section.name}`,
        reason: 'binds no TCP address: no listener',
      })
      return ok(null)
    }
    for (const extra of front.binds.slice(1)) {
      note(
        ctx,
        extra.d,
        'unmapped',
        `a pgmesh listener has one bind address; ${bind.address} is used, ${extra.address} is not (add a second listener)`,
      )
    }
    const l: ListenerConfigInput = {
      name: pgmeshName(name, `listener${listeners.length + 1}`),
      bind: bind.address,
      role: 'servers',
    }
    bindLines.set(l.name, { line: bind.d.line, directive: words(bind.d) })
    const balance = back.settings.balance ?? front.settings.balance
    if (balance !== undefined) l.balance = balance.value
    const maxconn = front.settings.maxconn
    if (maxconn !== undefined) l.maxconn = maxconn
    const t = (k: string) => front.settings.timeouts.get(k) ?? back.settings.timeouts.get(k)
    const setTimeout = (
      field: keyof typeof TIMEOUT_BOUNDS,
      v: { ms: number; d: HaproxyLine } | undefined,
    ) => {
      if (v === undefined) return
      const [min, max] = TIMEOUT_BOUNDS[field]
      const clamped = Math.min(max, Math.max(min, v.ms))
      if (clamped !== v.ms) note(ctx, v.d, 'review', `${field} must be ${min}-${max} ms: ${clamped} is used`)
      l[field] = clamped
    }
    setTimeout('connectTimeoutMs', t('connect'))
    setTimeout('queueTimeoutMs', t('queue'))
    // pgmesh has one idle timeout: `timeout tunnel` if set (it overrides client/server in TCP
    // mode), else the shorter of client and server, which is when HAProxy would cut the session
    const client = t('client')
    const server = t('server')
    const idle = t('tunnel') ?? [client, server].filter((x) => x !== undefined).sort((x, y) => x.ms - y.ms)[0]
    setTimeout('idleTimeoutMs', idle)
    const patroni = patroniRole(back.settings)
    const servers = back.servers.filter((s) => s.params.disabled !== true)
    for (const s of back.servers)
      if (s.params.disabled === true) note(ctx, s.d, 'unmapped', 'disabled server: not carried over')
    if (patroni !== null && 'role' in patroni && servers.length > 0) {
      if (back.settings.expect !== undefined && !back.settings.expect.ok) {
        note(
          ctx,
          back.settings.expect.d,
          'review',
          'Patroni answers 200 or 503; pgmesh reads the role itself, so this expectation is not needed',
        )
      }
      l.role = patroni.role
      if (patroni.lagBytes !== undefined) l.replicaMaxLagBytes = patroni.lagBytes
      if (patroni.role === 'replica') {
        note(
          ctx,
          patroni.d,
          'review',
          'role replica: when no replica is left, pgmesh sends these clients to the primary (HAProxy refused them)',
        )
      }
      for (const s of servers) {
        const r = addDatabase(s, false)
        if (!r.ok) return r
      }
    } else {
      if (patroni !== null && 'why' in patroni) {
        note(
          ctx,
          patroni.d,
          'unmapped',
          `${patroni.why}: the listener becomes a plain server list (role servers)`,
        )
      }
      if (servers.length === 0) {
        ctx.notes.push({
          source: 'haproxy',
          kind: 'unmapped',
          line: back.section.line,
          directive: `${back.section.kind} ${back.section.name}`,
          reason: 'has no servers: no listener',
        })
        return ok(null)
      }
      l.servers = servers.map((s) => ({
        address: hostPort(s.host, s.port),
        ...(s.params.weight === undefined ? {} : { weight: s.params.weight }),
        ...(s.params.maxconn === undefined ? {} : { maxconn: s.params.maxconn }),
      }))
      for (const s of servers) {
        if (s.params.check) {
          note(
            ctx,
            s.d,
            'unmapped',
            'health check not carried over: pgmesh runs no checks against the servers of a `servers` listener; a failed connect goes to the next server, skips the failed one for a moment, and counts in pgmesh_backend_connect_errors_total',
          )
        }
      }
    }
    return ok(l)
  }

  for (const p of listens) {
    const r = toListener(p, p, p.section.name)
    if (!r.ok) return r
    if (r.value !== null) listeners.push(r.value)
  }
  for (const f of frontends) {
    const backendName = f.defaultBackend?.name
    const back = backendName === undefined ? undefined : backends.get(backendName)
    if (back === undefined) {
      ctx.notes.push({
        source: 'haproxy',
        kind: 'unmapped',
        line: f.section.line,
        directive: `frontend ${f.section.name}`,
        reason:
          backendName === undefined
            ? 'no default_backend: no listener'
            : `default_backend '${backendName}' is not a TCP backend in this file: no listener`,
      })
      continue
    }
    usedBackends.add(backendName!)
    const r = toListener(f, back, f.section.name)
    if (!r.ok) return r
    if (r.value !== null) listeners.push(r.value)
  }
  for (const [name, b] of backends) {
    if (!usedBackends.has(name)) {
      ctx.notes.push({
        source: 'haproxy',
        kind: 'unmapped',
        line: b.section.line,
        directive: `backend ${name}`,
        reason: 'no frontend uses it as default_backend',
      })
      for (const d of b.section.directives) ctx.handled.add(d.line)
    }
  }

  // everything not carried over and not explained yet gets its reason here
  const all = [
    ...defaultsLines,
    ...[...listens, ...frontends, ...backends.values()].flatMap((p) => p.section.directives),
  ]
  for (const d of all) {
    if (ctx.handled.has(d.line)) continue
    const [kw = '', a = ''] = d.words
    const reason =
      REASONS[`${kw} ${a}`] ??
      REASONS[kw] ??
      (kw === 'timeout'
        ? `timeout ${a} has no pgmesh counterpart`
        : 'no pgmesh counterpart known to the importer')
    note(ctx, d, 'unmapped', reason)
  }
  return ok({ listeners, databases, notes: ctx.notes, bindLines })
}
