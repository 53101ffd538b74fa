import { z } from 'zod'
import { DialAddressSchema, ListenAddressSchema } from './address.js'
import { ms } from './ids.js'
import { CidrSchema } from './policy.js'

const Name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 characters: letters, digits, _ . -')

export const BALANCE = ['roundrobin', 'leastconn', 'source', 'first', 'random'] as const

/**
 * A database node's confirmed state as one pgmesh node sees it: `primary` (the database itself
 * says it accepts writes), `replica` (in recovery, from the database or Patroni), `up` (answers,
 * role unknown: only a `tcp` check, or Patroni calls it the leader without the database's word),
 * `down`.
 */
export const DB_STATES = ['primary', 'replica', 'up', 'down'] as const
export const DbStateSchema = z.enum(DB_STATES)
export type DbState = z.infer<typeof DbStateSchema>

/** The probes a node can run against each database node. */
export const DB_CHECK_KINDS = ['postgres', 'patroni', 'tcp'] as const

/**
 * A PostgreSQL node pgmesh routes to and checks. The database's own answer (a real connection,
 * `pg_is_in_recovery()`) decides whether it takes writes; Patroni's REST API, when given, adds its
 * view (role, timeline, lag) for `/v1/backends`, but a hung Patroni API never takes writes down.
 */
export const DatabaseConfigSchema = z
  .object({
    name: Name,
    address: DialAddressSchema,
    /** Patroni's REST API, e.g. http://10.0.0.11:8008 */
    patroniUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** Default 1 */
    weight: z.number().int().min(0).max(256).default(1),
    /** Default 1000 */
    maxconn: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict()
export type DatabaseConfig = z.infer<typeof DatabaseConfigSchema>

/** How every node checks every database node. */
export const DatabaseChecksSchema = z
  .object({
    /**
     * Which probes run, each every interval: `postgres` (a real connection and
     * `pg_is_in_recovery()`: the only probe that can make a node writable), `patroni` (GET
     * /patroni on databases with a patroniUrl: role, timeline, lag), `tcp` (a connect to the
     * database port; a refused connect marks the node down at once). Default [postgres, patroni]
     */
    use: z
      .array(z.enum(DB_CHECK_KINDS))
      .min(1)
      .default(['postgres', 'patroni'])
      .refine((u) => new Set(u).size === u.length, 'each check kind at most once'),
    /** the role the checks log in as; it needs no privileges beyond connecting. Default postgres */
    user: z.string().min(1).default('postgres'),
    /** file holding the password (first line); none = trust or peer authentication */
    passwordFile: z.string().min(1).optional(),
    /** Default postgres */
    database: z.string().min(1).default('postgres'),
    /** Default 250 */
    intervalMs: ms(250, 20, 600_000),
    /** Default 1000 */
    timeoutMs: ms(1_000, 20, 600_000),
    /** consecutive results needed before a node counts as primary (or up) again. Default 1 */
    rise: z.number().int().min(1).max(100).default(1),
    /** consecutive results needed before a primary stops counting as one, or a node as up. Default 2 */
    fall: z.number().int().min(1).max(100).default(2),
    /** an observation older than this does not count toward the agreement. Default 3000 */
    freshMs: ms(3_000, 100, 600_000),
  })
  .strict()

/** A server a `servers` listener sends connections to. */
export const ProxyServerSchema = z
  .object({
    address: DialAddressSchema,
    /** relative share of connections; 0 = drained (used only when nothing else is up). Default 1 */
    weight: z.number().int().min(0).max(256).default(1),
    /** most connections this node opens to it at once. Default 1000 */
    maxconn: z.number().int().min(1).max(100_000).default(1000),
    /** send a PROXY protocol header (v1 text, v2 binary) with the client's address first; none by default */
    sendProxy: z.enum(['v1', 'v2']).optional(),
  })
  .strict()

/**
 * Per-source limits, counted per listener. The rate is a token bucket the whole mesh shares: each
 * node takes the new connections other nodes admitted from a busy source out of its own bucket.
 */
export const SourceLimitsSchema = z
  .object({
    /** most connections one source address may have open through this node at once; none by default */
    maxConnPerSource: z.number().int().min(1).max(1_000_000).optional(),
    /** new connections per second one source may open (across the mesh); none by default */
    ratePerSource: z.number().min(0.01).max(1_000_000).optional(),
    /** how many new connections above the rate a quiet source may open at once. Default: the rate, at least 1 */
    burst: z.number().int().min(1).max(1_000_000).optional(),
    /**
     * IPv6 clients count per network of this many bits (one host holds a whole /64; counting each
     * address would let it open a new "source" at will). Default 64
     */
    ipv6PrefixBits: z.number().int().min(32).max(128).default(64),
    /** sources whose rate is remembered; the least recently seen is forgotten first. Default 10000 */
    trackedSources: z.number().int().min(16).max(1_000_000).default(10_000),
  })
  .strict()

/** Sticky sessions: a client goes back to the backend it used while that backend is routable. */
export const StickSchema = z
  .object({
    on: z.literal('source'),
    /** an entry expires this long after the client last connected. Default 1800000 (30 min) */
    ttlMs: ms(1_800_000, 1_000, 7 * 86_400_000),
    /** most entries; the least recently used is dropped first. Default 10000 */
    maxEntries: z.number().int().min(1).max(1_000_000).default(10_000),
  })
  .strict()

/** Accepting the PROXY protocol (v1 and v2) from upstream load balancers. */
export const ProxyProtocolSchema = z
  .object({
    /** the sources that may (and, if `required`, must) send a PROXY header; a header from any other source is refused */
    trusted: z.array(CidrSchema).min(1).max(1_000),
    /** a trusted source that sends no header is refused. Default true */
    required: z.boolean().default(true),
    /** the longest a trusted source may take to send its header. Default 3000 */
    headerTimeoutMs: ms(3_000, 10, 60_000),
  })
  .strict()

const DAY_MS = 86_400_000

/**
 * TLS on a listener. `passthrough` (the default, and what a listener without `tls` does): pgmesh
 * never touches TLS, the client and the database negotiate it end to end. `terminate`: pgmesh holds
 * the certificate; a PostgreSQL listener answers the client's SSLRequest with 'S' (and accepts
 * PostgreSQL 17's direct TLS, ALPN `postgresql`), a `servers` listener speaks plain TLS. File paths
 * are part of the (gossiped) cluster config; the files themselves, above all the key, stay on each
 * node and are never sent, logged or shown.
 */
export const ListenerTlsSchema = z
  .object({
    mode: z.enum(['passthrough', 'terminate']),
    /** PEM certificate chain pgmesh shows its clients (`terminate`) */
    certFile: z.string().min(1).optional(),
    /** PEM private key of `certFile`; readable by pgmesh alone */
    keyFile: z.string().min(1).optional(),
    /** `terminate`: a client that does not ask for TLS is refused with an ErrorResponse (28000). Default true */
    requireClientTls: z.boolean().default(true),
    /**
     * How pgmesh talks to the database after terminating: `plain`, or `verify-full` (TLS, the
     * server's certificate checked against `backendCaFile` and its name against the backend's host
     * or `backendServerName`). Default plain
     */
    backend: z.enum(['plain', 'verify-full']).default('plain'),
    /** PEM CA bundle the backends' certificates must chain to (`backend: verify-full`) */
    backendCaFile: z.string().min(1).optional(),
    /** the name the backends' certificates must carry; default: each backend's host */
    backendServerName: z.string().min(1).max(253).optional(),
    /** the client's TLS handshake (from accept, SSLRequest included) must end within this. Default 5000 */
    handshakeTimeoutMs: ms(5_000, 100, 600_000),
    /** a warning is logged (and repeated daily) once the certificate expires within this. Default 1209600000 (14 days) */
    expiryWarningMs: ms(14 * DAY_MS, 0, 365 * DAY_MS),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.mode === 'terminate') {
      if (t.certFile === undefined)
        ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'terminate needs certFile' })
      if (t.keyFile === undefined)
        ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'terminate needs keyFile' })
    } else if (t.backend !== 'plain' || t.certFile !== undefined || t.keyFile !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['mode'],
        message:
          'passthrough leaves TLS to the client and the database: certFile, keyFile and backend need mode "terminate"',
      })
    }
    if (t.backend === 'verify-full' && t.backendCaFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['backendCaFile'],
        message: 'backend verify-full needs backendCaFile',
      })
    }
  })
export type ListenerTlsConfig = z.infer<typeof ListenerTlsSchema>

/**
 * A TCP listener every node serves. `role` picks the backends: `primary` (the agreed, writable
 * database), `replica`, `any`, or `servers` (the explicit list). Limits apply per node.
 */
export const ListenerConfigSchema = z
  .object({
    name: Name,
    bind: ListenAddressSchema,
    role: z.enum(['primary', 'replica', 'any', 'servers']),
    /** for `role: servers` */
    servers: z.array(ProxyServerSchema).max(256).default([]),
    /** Default roundrobin */
    balance: z.enum(BALANCE).default('roundrobin'),
    /** client connections at once; more wait in the queue. Default 1000 */
    maxconn: z.number().int().min(1).max(1_000_000).default(1000),
    /** clients waiting for a backend (none available, or all at maxconn); beyond it they are refused. Default 100 */
    queueSize: z.number().int().min(0).max(1_000_000).default(100),
    /** a queued client is closed after this long. Default 10000 */
    queueTimeoutMs: ms(10_000, 1, 3_600_000),
    /** Default 3000 */
    connectTimeoutMs: ms(3_000, 1, 600_000),
    /** a connection with no traffic either way for this long is closed. Default 1800000 (30 min) */
    idleTimeoutMs: ms(1_800_000, 100, 86_400_000),
    /** TCP keepalive after this much idle time, both sides; 0 = off. Default 60000 */
    keepAliveMs: ms(60_000, 0, 86_400_000),
    /** `replica` listeners: replicas lagging more than this many bytes are skipped; none left → the primary */
    replicaMaxLagBytes: z.number().int().min(0).optional(),
    /** on stop and on removal by a reload: how long established sessions may finish. Default 10000 */
    drainTimeoutMs: ms(10_000, 0, 3_600_000),
    /**
     * `node` (default): pgmesh relays every byte. `kernel`: while the route is certain, nftables
     * forwards new connections straight to the chosen backend (Linux, IPv4, CAP_NET_ADMIN); while it
     * is not (no agreed primary, a switchover) they reach pgmesh's own listener and queue there.
     * See docs/configuration.md for what the kernel path cannot do.
     */
    dataPath: z.enum(['node', 'kernel']).default('node'),
    /**
     * client addresses (CIDR) that may connect; empty = any. The most specific matching entry of
     * `allow` and `deny` decides; a tie goes to `deny`.
     */
    allow: z.array(CidrSchema).max(100_000).default([]),
    /** client addresses (CIDR) that are refused */
    deny: z.array(CidrSchema).max(100_000).default([]),
    limits: SourceLimitsSchema.optional(),
    stick: StickSchema.optional(),
    proxyProtocol: ProxyProtocolSchema.optional(),
    /** TLS termination; none = passthrough */
    tls: ListenerTlsSchema.optional(),
    /**
     * PostgreSQL listeners: append ` (client IP)` to the client's `application_name` (as
     * PgBouncer's application_name_add_host), so pg_stat_activity shows who came through the
     * proxy. Needs the startup packet in clear: plain clients, or `tls.mode: terminate`. Default false
     */
    applicationNameAddHost: z.boolean().optional(),
    /**
     * PostgreSQL listeners: a CancelRequest is forwarded to every database node that could hold
     * its session (PostgreSQL ignores one whose key is not its own), at most this many per second
     * on this node; more are dropped and counted. 0 = send each to the one backend the balancer
     * picks, as a plain TCP proxy would. Default 100
     */
    cancelFanoutPerSecond: z.number().int().min(0).max(100_000).optional(),
  })
  .strict()
  .superRefine((l, ctx) => {
    if (l.dataPath === 'kernel') {
      if (l.role === 'servers') {
        ctx.addIssue({
          code: 'custom',
          path: ['dataPath'],
          message: 'the kernel path is for primary, replica and any listeners',
        })
      }
      if (l.balance === 'leastconn') {
        ctx.addIssue({
          code: 'custom',
          path: ['balance'],
          message: 'leastconn needs the Node path (the kernel does not count sessions per backend)',
        })
      }
      if (l.bind.host.includes(':')) {
        ctx.addIssue({ code: 'custom', path: ['bind'], message: 'the kernel path is IPv4 only' })
      }
    }
    if (l.role === 'servers' && l.servers.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['servers'], message: 'role "servers" needs at least one server' })
    }
    if (l.role === 'servers' && l.applicationNameAddHost === true) {
      ctx.addIssue({
        code: 'custom',
        path: ['applicationNameAddHost'],
        message: 'applicationNameAddHost needs a PostgreSQL listener (role primary, replica or any)',
      })
    }
    if (l.role !== 'servers' && l.servers.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['servers'],
        message: `servers are only used with role "servers", not "${l.role}"`,
      })
    }
  })
export type ListenerConfig = z.infer<typeof ListenerConfigSchema>
export type ListenerConfigInput = z.input<typeof ListenerConfigSchema>
