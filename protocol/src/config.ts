import { z } from 'zod'
import { DialAddressSchema, ListenAddressSchema } from './address.js'
import { CidrSchema } from './cidr.js'
import { checkPriorityWeights, ElectionConfigSchema, TrackedCheckSchema } from './election.js'
import { err, type Issue, ok, pgmeshError, type Result } from './errors.js'
import { ms, NodeIdSchema, PrioritySchema } from './ids.js'
import { DatabaseChecksSchema, DatabaseConfigSchema, ListenerConfigSchema } from './listeners.js'
import { issuesWithHints, parseIgnoringUnknownFields } from './unknown-fields.js'
import { NodeVipSchema, VipConfigSchema } from './vip.js'

export { NodeIdSchema, PrioritySchema } from './ids.js'

/**
 * Membership timings (memberlist-style: every timing is a named field with a documented default).
 * A member is `suspect` once no heartbeat arrived for `suspectTimeoutMs`, `dead` after `deadTimeoutMs`.
 * Dead members stay listed (they count toward quorum) until an operator removes them;
 * members that left gracefully are forgotten after `leftRetentionMs`.
 */
export const MembershipTimingsSchema = z
  .object({
    heartbeatIntervalMs: ms(500, 20, 60_000),
    suspectTimeoutMs: ms(1_500, 50, 600_000),
    deadTimeoutMs: ms(4_000, 100, 3_600_000),
    leftRetentionMs: ms(600_000, 0, 86_400_000),
  })
  .strict()
  .superRefine((t, ctx) => {
    if (t.suspectTimeoutMs < 2 * t.heartbeatIntervalMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['suspectTimeoutMs'],
        message: `must be at least 2 × heartbeatIntervalMs (${2 * t.heartbeatIntervalMs}), or one lost heartbeat makes a member suspect`,
      })
    }
    if (t.deadTimeoutMs <= t.suspectTimeoutMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['deadTimeoutMs'],
        message: `must be greater than suspectTimeoutMs (${t.suspectTimeoutMs})`,
      })
    }
  })
export type MembershipTimings = z.infer<typeof MembershipTimingsSchema>

export const GossipTuningSchema = z
  .object({
    /** largest gossip message accepted or sent, bytes */
    maxMessageBytes: z.number().int().min(1024).max(1_048_576).default(65_536),
    /** gossipsub's mesh maintenance interval (not the membership heartbeat) */
    meshHeartbeatMs: ms(1_000, 100, 10_000),
    /**
     * gossipsub mesh degree: how many peers forward each message on. Publishers already send to
     * every connected peer, so forwarding only matters for peers beyond `maxPeers`; each forwarded
     * copy costs CPU on both ends.
     */
    meshDegree: z.number().int().min(1).max(12).default(2),
    /** a node dials peers it learns from heartbeats until it has this many connections */
    maxPeers: z.number().int().min(1).max(1000).default(64),
    /**
     * a connection over which the peer's topic subscription has not arrived after this long is
     * closed and redialled (gossipsub does not retry a failed stream set-up)
     */
    subscribeGraceMs: ms(5_000, 500, 600_000),
  })
  .strict()

/** Cluster settings: the same on every node (gossiped and versioned in a later release). */
export const ClusterConfigSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'must be 1-63 characters: letters, digits, _ . -')
      .default('pgmesh'),
    membership: MembershipTimingsSchema.prefault({}),
    gossip: GossipTuningSchema.prefault({}),
    election: ElectionConfigSchema.prefault({}),
    /**
     * The members the cluster is founded with and their priorities: the first voter configuration
     * (the same on every founding node), and the set the priority/weight rule is checked against.
     * Nodes joining later are added by the MASTER and need not be listed.
     */
    members: z
      .array(z.object({ id: NodeIdSchema, priority: PrioritySchema }).strict())
      .max(64)
      .default([]),
    /** tracked checks (Keepalived's track_script), run by every node on itself */
    checks: z.array(TrackedCheckSchema).max(64).default([]),
    vip: VipConfigSchema.prefault({}),
    /** TCP listeners every node serves */
    listeners: z.array(ListenerConfigSchema).max(256).default([]),
    /** the PostgreSQL nodes behind role listeners */
    databases: z.array(DatabaseConfigSchema).max(64).default([]),
    databaseChecks: DatabaseChecksSchema.prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const add = (path: (string | number)[], message: string) =>
      ctx.addIssue({ code: 'custom', path, message })
    /** reports every item whose key an earlier item already has */
    const unique = <T>(
      field: string,
      items: readonly T[],
      key: (t: T) => string | null,
      what: (k: string) => string,
    ) => {
      const seen = new Map<string, number>()
      items.forEach((item, i) => {
        const k = key(item)
        if (k === null) return
        const first = seen.get(k)
        if (first !== undefined) add([field, i], `${what(k)} (also ${field}.${first})`)
        else seen.set(k, i)
      })
    }
    const what = (noun: string) => (k: string) => `duplicate ${noun} "${k}"`
    unique('checks', c.checks, (k) => k.name, what('check name'))
    unique('members', c.members, (m) => m.id, what('member'))
    unique('databases', c.databases, (d) => d.name, what('database'))
    unique('listeners', c.listeners, (l) => l.name, what('listener'))
    unique(
      'listeners',
      c.listeners,
      (l) => (l.bind.port === 0 ? null : `${l.bind.host}:${l.bind.port}`),
      (k) => `bind address ${k} is used twice`,
    )
    c.listeners.forEach((l, i) => {
      if (l.role !== 'servers' && c.databases.length === 0) {
        add(
          ['listeners', i, 'role'],
          `role "${l.role}" routes to the databases in cluster.databases, and there are none`,
        )
      }
    })
    checkDatabaseCheckKinds(c, add)
    const checks = c.checks.map((k) => ({ name: k.name, weight: k.weight }))
    for (const issue of checkPriorityWeights(c.members.map((m) => ({ ...m, checks })))) {
      add(['members', ...issue.path.split('.').slice(1)], issue.message)
    }
  })
export type ClusterConfig = z.infer<typeof ClusterConfigSchema>

/** The probes in `databaseChecks.use` must be able to tell each listener's role apart. */
function checkDatabaseCheckKinds(
  c: Pick<ClusterConfig, 'listeners' | 'databases' | 'databaseChecks'>,
  add: (path: (string | number)[], message: string) => void,
): void {
  const use = new Set(c.databaseChecks.use)
  c.listeners.forEach((l, i) => {
    if (l.role === 'primary' && !use.has('postgres')) {
      add(
        ['listeners', i, 'role'],
        'role "primary" needs the "postgres" check in databaseChecks.use: only the database itself can say it accepts writes',
      )
    }
    if (l.role === 'replica' && !use.has('postgres') && !use.has('patroni')) {
      add(
        ['listeners', i, 'role'],
        'role "replica" needs the "postgres" or "patroni" check in databaseChecks.use to tell replicas apart',
      )
    }
  })
  if (use.has('patroni') && !use.has('postgres') && !use.has('tcp')) {
    c.databases.forEach((d, i) => {
      if (d.patroniUrl === undefined) {
        add(
          ['databases', i, 'patroniUrl'],
          'databaseChecks.use has only "patroni": every database needs a patroniUrl',
        )
      }
    })
  }
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const LogLevelSchema = z.enum(LOG_LEVELS)
export type LogLevel = z.infer<typeof LogLevelSchema>

export const JoinRetrySchema = z
  .object({
    /** first delay between attempts to reach a seed */
    initialMs: ms(200, 10, 60_000),
    /** backoff cap between attempts */
    maxMs: ms(5_000, 100, 600_000),
    /** one dial attempt gives up after this long */
    dialTimeoutMs: ms(5_000, 100, 120_000),
  })
  .strict()

/**
 * Node-local allowances, checked before a cluster config version is adopted (and at start).
 * Programs: an exec check or notify script runs only when its program is listed here, or the
 * exact same argv is in this node's own config file. Addresses: unset lists leave them
 * unconstrained.
 */
export const NodeAllowSchema = z
  .object({
    /** programs (absolute paths) exec checks and notify scripts may run, with any arguments */
    commands: z
      .array(z.string().regex(/^\/[^\0]*$/, 'must be an absolute path'))
      .max(256)
      .default([]),
    /**
     * networks every database address, patroniUrl host and `servers` listener server must be in;
     * a host name must be listed in `backendHosts`. Default: unconstrained
     */
    backendCidrs: z.array(CidrSchema).max(256).optional(),
    /** host names allowed as backend addresses while `backendCidrs` is set. Default none */
    backendHosts: z.array(z.string().min(1).max(253)).max(256).default([]),
    /** networks `cluster.vip.address` must be in. Default: unconstrained */
    vipCidrs: z.array(CidrSchema).max(256).optional(),
  })
  .strict()
export type NodeAllow = z.infer<typeof NodeAllowSchema>

/** Settings that belong to one node and never travel over gossip. */
export const NodeConfigSchema = z
  .object({
    id: NodeIdSchema,
    priority: PrioritySchema.default(100),
    gossip: z
      .object({
        listen: ListenAddressSchema.default({ host: '0.0.0.0', port: 7946 }),
        /** the address peers should dial, when `listen` is a wildcard or behind NAT */
        advertise: DialAddressSchema.optional(),
      })
      .strict()
      .prefault({}),
    api: z
      .object({
        listen: ListenAddressSchema.default({ host: '127.0.0.1', port: 7947 }),
        /**
         * file with the API's bearer tokens, one per line (# comments allowed); re-read on SIGHUP.
         * None: every write endpoint answers 403 API_WRITES_DISABLED
         */
        tokensFile: z.string().min(1).optional(),
        /**
         * whether read endpoints (status, config, metrics, the status page) need a token too.
         * Default: false when `listen` is a loopback address, true otherwise (then
         * `tokensFile` is required, or set this to false to serve reads to anyone who reaches it)
         */
        protectReads: z.boolean().optional(),
        /**
         * host names (without port) accepted in the Host header besides IP literals and
         * `localhost`: a request naming any other host is refused (421), so a web page cannot
         * reach the API through DNS rebinding. Default none
         */
        allowedHosts: z
          .array(z.string().regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/, 'must be a host name'))
          .max(64)
          .default([]),
        /** connections open at once; more are closed on accept. Default 256 */
        maxConnections: z.number().int().min(1).max(100_000).default(256),
        /** request line plus headers, bytes; larger gets 431. Default 16384 */
        maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
        /** request bodies, bytes; a larger Content-Length gets 413 unread. Default 1048576 */
        maxBodyBytes: z.number().int().min(1024).max(67_108_864).default(1_048_576),
        /** the headers must have arrived within this long of the connection. Default 5000 */
        headersTimeoutMs: ms(5_000, 100, 600_000),
        /** the whole request must have arrived within this long. Default 10000 */
        requestTimeoutMs: ms(10_000, 100, 3_600_000),
        /** an idle keep-alive connection is closed after this long. Default 5000 */
        keepAliveTimeoutMs: ms(5_000, 100, 600_000),
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.headersTimeoutMs > a.requestTimeoutMs) {
          ctx.addIssue({
            code: 'custom',
            path: ['headersTimeoutMs'],
            message: `must not exceed requestTimeoutMs (${a.requestTimeoutMs})`,
          })
        }
      })
      .prefault({}),
    /**
     * What the gossiped cluster config may make this node do (Keepalived's script security): the
     * cluster config can name programs and addresses, only this node's own config allows them.
     */
    allow: NodeAllowSchema.prefault({}),
    /**
     * this node's own bind address for a cluster listener, by listener name: bind addresses never
     * travel with the cluster config (several nodes on one host, or per-host addresses)
     */
    listenerBinds: z.record(z.string(), ListenAddressSchema).default({}),
    /** seed addresses (any member); the node retries until one answers */
    join: z.array(DialAddressSchema).max(64).default([]),
    joinRetry: JoinRetrySchema.prefault({}),
    /** file with the cluster secret written by `pgmesh keygen` */
    secretFile: z.string().min(1).optional(),
    /** run without a cluster secret: anyone who can reach the gossip port can join. Never in production. */
    insecureDev: z.boolean().default(false),
    /** holds the node key (stable peer id) and the incarnation counter */
    dataDir: z.string().min(1).optional(),
    logLevel: LogLevelSchema.default('info'),
    vip: NodeVipSchema.prefault({}),
  })
  .strict()
  .superRefine((n, ctx) => {
    if (n.secretFile === undefined && !n.insecureDev) {
      ctx.addIssue({
        code: 'custom',
        path: ['secretFile'],
        message:
          'a cluster secret is required (create one with `pgmesh keygen --out FILE`), or set insecureDev for a throw-away test mesh',
      })
    }
  })
export type NodeConfig = z.infer<typeof NodeConfigSchema>

export const ConfigFileSchema = z
  .object({
    node: NodeConfigSchema,
    cluster: ClusterConfigSchema.prefault({}),
  })
  .strict()
  .superRefine((f, ctx) => {
    const listed = f.cluster.members.find((m) => m.id === f.node.id)
    if (listed !== undefined && listed.priority !== f.node.priority) {
      ctx.addIssue({
        code: 'custom',
        path: ['node', 'priority'],
        message: `is ${f.node.priority}, but cluster.members lists node "${f.node.id}" with priority ${listed.priority}`,
      })
    }
    if (f.cluster.vip.driver === 'linux' && f.node.vip.interface === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['node', 'vip', 'interface'],
        message: 'the linux VIP driver needs an interface',
      })
    }
  })
export type ConfigFile = z.infer<typeof ConfigFileSchema>

/**
 * A cluster section on its own (from `PUT /v1/config`, `pgmesh config check` or a file reload),
 * every problem listed; an unknown field is one, with a "did you mean" hint.
 */
export function validateClusterConfig(doc: unknown): Result<ClusterConfig> {
  const r = ClusterConfigSchema.safeParse(doc)
  if (r.success) return ok(r.data)
  const issues = issuesWithHints(ClusterConfigSchema, r.error, 'cluster')
  return err(pgmeshError('CONFIG_INVALID', `the cluster config has ${issues.length} problem(s)`, issues))
}

/**
 * A cluster section another node made (gossip) or this node stored: written by a pgmesh that may
 * be newer than this one, so fields this version does not know are dropped and listed in
 * `ignored` (the caller logs them), never refused — a rolling upgrade must not stop an older node
 * from following the cluster config. Everything it does know is validated as strictly as ever.
 */
export function validatePeerClusterConfig(
  doc: unknown,
): Result<{ readonly config: ClusterConfig; readonly ignored: readonly string[] }> {
  const { result, ignored } = parseIgnoringUnknownFields(ClusterConfigSchema, doc)
  if (result.success) return ok({ config: result.data, ignored: ignored.map((p) => `cluster.${p}`) })
  const issues = issuesWithHints(ClusterConfigSchema, result.error, 'cluster')
  return err(pgmeshError('CONFIG_INVALID', `the cluster config has ${issues.length} problem(s)`, issues))
}
export type ConfigFileInput = z.input<typeof ConfigFileSchema>

/** What `pgmesh config get` writes and `config apply` reads: the version it was read at + the section. */
export const ClusterEditFileSchema = z
  .object({
    /** the version the edit was made on: apply fails if another edit came first */
    baseVersion: z.number().int().min(0).optional(),
    cluster: z.unknown(),
  })
  .strict()

/**
 * Which of the three shapes a config document has: a node's config file (`node` + `cluster`,
 * checked whole), an edit file (`baseVersion` + `cluster`) or a bare cluster section.
 */
export function configDocumentKind(doc: Record<string, unknown>): 'file' | 'edit' | 'cluster' {
  if ('node' in doc) return 'file'
  return 'cluster' in doc ? 'edit' : 'cluster'
}

/** An edit file's top level (strict: `baseVersion` and `cluster` only); the section is checked apart. */
export function validateClusterEditFile(
  doc: unknown,
): Result<{ readonly cluster: unknown; readonly baseVersion?: number }> {
  const r = ClusterEditFileSchema.safeParse(doc)
  if (!r.success) {
    const issues = issuesWithHints(ClusterEditFileSchema, r.error)
    return err(pgmeshError('CONFIG_INVALID', `the file has ${issues.length} problem(s)`, issues))
  }
  return ok(r.data.baseVersion === undefined ? { cluster: r.data.cluster } : { ...r.data })
}

/** Zod issues as path + message, the shape every validation error in pgmesh uses. */
export function toIssues(error: z.ZodError): Issue[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }))
}

/**
 * Validates an already-parsed config file (YAML/JSON): both sections strict, an unknown field
 * anywhere an error naming its path with a "did you mean" hint.
 */
export function validateConfig(doc: unknown): Result<ConfigFile> {
  const r = ConfigFileSchema.safeParse(doc)
  if (r.success) return ok(r.data)
  const issues = issuesWithHints(ConfigFileSchema, r.error)
  return err(pgmeshError('CONFIG_INVALID', `configuration has ${issues.length} problem(s)`, issues))
}
