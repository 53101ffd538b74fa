import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { type ConfigFile, err, ok, pgmeshError, type Result, validateConfig } from '@pgmesh/protocol'
import { parse as parseYaml, YAMLParseError } from 'yaml'

/** `pgmesh start` flags that override the config file. */
export interface StartOverrides {
  readonly id?: string
  readonly priority?: string
  readonly gossip?: string
  readonly advertise?: string
  readonly api?: string
  readonly join?: readonly string[]
  readonly secretFile?: string
  readonly tokensFile?: string
  readonly dataDir?: string
  readonly logLevel?: string
  readonly insecureDev?: boolean
  readonly cluster?: string
}

type Doc = Record<string, unknown>
const isDoc = (v: unknown): v is Doc => typeof v === 'object' && v !== null && !Array.isArray(v)

/** Reads a YAML (or JSON) document; errors name the file and, for syntax errors, the line. */
export async function readConfigDocument(file: string): Promise<Result<Doc>> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    return err(
      pgmeshError(
        'CONFIG_NOT_FOUND',
        `cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      ),
    )
  }
  let doc: unknown
  try {
    doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true })
  } catch (e) {
    const where = e instanceof YAMLParseError && e.linePos?.[0] ? ` at line ${e.linePos[0].line}` : ''
    return err(
      pgmeshError(
        'CONFIG_PARSE',
        `${file} is not valid YAML${where}: ${(e as Error).message.split('\n')[0]}`,
      ),
    )
  }
  if (doc === null || doc === undefined) doc = {}
  if (!isDoc(doc))
    return err(pgmeshError('CONFIG_PARSE', `${file} must hold a YAML mapping with 'node' and 'cluster'`))
  return ok(doc)
}

/** The effective config, and the cluster section as written (what the cluster config versions hash). */
export type LoadedConfig = ConfigFile & { readonly clusterInput: Record<string, unknown> }

/**
 * Builds the effective config: file < flags, then one schema validation so every problem is
 * reported at once with its path. Relative paths in the file are relative to the file; in flags,
 * to the working directory.
 */
export async function loadConfig(
  file: string | undefined,
  flags: StartOverrides,
  cwd: string,
): Promise<Result<LoadedConfig>> {
  let doc: Doc = {}
  if (file !== undefined) {
    const r = await readConfigDocument(resolve(cwd, file))
    if (!r.ok) return r
    doc = r.value
  }
  const baseDir = file === undefined ? cwd : dirname(resolve(cwd, file))
  const node: Doc = isDoc(doc.node) ? { ...doc.node } : {}
  const cluster: Doc = isDoc(doc.cluster) ? { ...doc.cluster } : {}
  for (const key of ['secretFile', 'dataDir'] as const) {
    const v = node[key]
    if (typeof v === 'string') node[key] = resolve(baseDir, v)
  }
  const gossip: Doc = isDoc(node.gossip) ? { ...node.gossip } : {}
  const api: Doc = isDoc(node.api) ? { ...node.api } : {}
  if (typeof api.tokensFile === 'string') api.tokensFile = resolve(baseDir, api.tokensFile)
  if (flags.id !== undefined) node.id = flags.id
  if (flags.priority !== undefined)
    node.priority = /^-?\d+$/.test(flags.priority) ? Number(flags.priority) : flags.priority
  if (flags.gossip !== undefined) gossip.listen = flags.gossip
  if (flags.advertise !== undefined) gossip.advertise = flags.advertise
  if (flags.api !== undefined) api.listen = flags.api
  if (flags.join !== undefined && flags.join.length > 0) node.join = [...flags.join]
  if (flags.secretFile !== undefined) node.secretFile = resolve(cwd, flags.secretFile)
  if (flags.tokensFile !== undefined) api.tokensFile = resolve(cwd, flags.tokensFile)
  if (flags.dataDir !== undefined) node.dataDir = resolve(cwd, flags.dataDir)
  if (flags.logLevel !== undefined) node.logLevel = flags.logLevel
  if (flags.insecureDev === true) node.insecureDev = true
  if (flags.cluster !== undefined) cluster.name = flags.cluster
  if (Object.keys(gossip).length > 0) node.gossip = gossip
  if (Object.keys(api).length > 0) node.api = api
  const r = validateConfig({ ...doc, node, cluster })
  if (!r.ok) return r
  const c = r.value
  const dataDir = c.node.dataDir ?? resolve(cwd, '.pgmesh', c.node.id)
  return ok({ ...c, node: { ...c.node, dataDir }, clusterInput: cluster })
}
