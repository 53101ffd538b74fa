import { readFile, writeFile } from 'node:fs/promises'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { formatError } from '@pgmesh/protocol'
import { importConfig } from '../import/import-config.js'
import { formatReport } from '../import/report.js'
import { type Io, issueLines, stdio } from './api-client.js'

export interface ImportCommand {
  readonly haproxy: string | undefined
  readonly keepalived: string | undefined
  readonly nodeId: string | undefined
  /** `ID=PRIORITY`, as given */
  readonly members: readonly string[]
  readonly cluster: string | undefined
  /** none: the YAML goes to stdout */
  readonly out: string | undefined
  readonly force: boolean
  /** the report as JSON on stderr */
  readonly json: boolean
}

export const IMPORT_SYNOPSIS =
  'pgmesh import --haproxy FILE --keepalived FILE [--node-id ID] [--member ID=PRIORITY]... [--out FILE]'

export const IMPORT_HELP = `Writes a pgmesh config from this host's haproxy.cfg and/or keepalived.conf, and reports on
stderr every directive it could not carry over, with its line and why (docs/migrating.md).

  --haproxy FILE          haproxy.cfg: listeners, and databases behind Patroni /primary /replica checks
  --keepalived FILE       keepalived.conf: priority, VIP, tracked scripts, preemption, notify scripts, peers
  --node-id ID            this node's id (default keepalived's router_id)
  --member ID=PRIORITY    another founding proxy; repeatable; the same list on every host
  --cluster NAME          cluster.name (default pgmesh)
  --out FILE              write the config there (not replaced without --force); default stdout
  --json                  the report as JSON

Exit status: 0 written, 1 the output could not be written, 2 unreadable or malformed input.`

export const IMPORT_USAGE = `${IMPORT_SYNOPSIS}\n\n${IMPORT_HELP}`

/** The flags, also what shell completion offers. */
export const IMPORT_OPTIONS = {
  haproxy: { type: 'string' },
  keepalived: { type: 'string' },
  'node-id': { type: 'string' },
  member: { type: 'string', multiple: true },
  cluster: { type: 'string' },
  out: { type: 'string', short: 'o' },
  force: { type: 'boolean' },
  json: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>

/** argv after `import`; never throws (usage errors come back as values). */
export function parseImportArgs(
  args: readonly string[],
):
  | { readonly ok: true; readonly command: { readonly kind: 'import' } & ImportCommand }
  | { readonly ok: false; readonly message: string } {
  try {
    const { values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: IMPORT_OPTIONS,
    })
    return {
      ok: true,
      command: {
        kind: 'import',
        haproxy: values.haproxy,
        keepalived: values.keepalived,
        nodeId: values['node-id'],
        members: values.member ?? [],
        cluster: values.cluster,
        out: values.out,
        force: values.force === true,
        json: values.json === true,
      },
    }
  } catch (e) {
    return { ok: false, message: e instanceof Error ? e.message : String(e) }
  }
}

async function read(file: string, io: Io): Promise<string | null> {
  try {
    return await readFile(file, 'utf8')
  } catch (e) {
    io.err(`pgmesh: IMPORT_READ: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? 'error'})\n`)
    return null
  }
}

/** `pgmesh import`: 0 written, 1 the output could not be written, 2 bad input (the message names file and line). */
export async function runImportCommand(c: ImportCommand, io: Io = stdio): Promise<number> {
  if (c.haproxy === undefined && c.keepalived === undefined) {
    io.err(`pgmesh: import needs --haproxy FILE, --keepalived FILE or both\n\n${IMPORT_USAGE}\n`)
    return 2
  }
  const members: { id: string; priority: number }[] = []
  for (const m of c.members) {
    const match = /^([^=]+)=(\d{1,3})$/.exec(m)
    if (match === null) {
      io.err(`pgmesh: --member '${m}' must be ID=PRIORITY, e.g. proxy-2=105\n`)
      return 2
    }
    members.push({ id: match[1]!, priority: Number(match[2]) })
  }
  const haproxy = c.haproxy === undefined ? undefined : await read(c.haproxy, io)
  const keepalived = c.keepalived === undefined ? undefined : await read(c.keepalived, io)
  if (haproxy === null || keepalived === null) return 2
  const r = importConfig({
    ...(haproxy === undefined ? {} : { haproxy }),
    ...(keepalived === undefined ? {} : { keepalived }),
    ...(c.nodeId === undefined ? {} : { nodeId: c.nodeId }),
    ...(c.cluster === undefined ? {} : { clusterName: c.cluster }),
    members,
  })
  if (!r.ok) {
    io.err(
      `pgmesh: ${formatError({ code: r.error.code, message: r.error.message })}\n${issueLines(r.error.issues)}`,
    )
    return 2
  }
  const files = {
    ...(c.haproxy === undefined ? {} : { haproxy: c.haproxy }),
    ...(c.keepalived === undefined ? {} : { keepalived: c.keepalived }),
  }
  if (c.out === undefined) {
    io.out(r.value.yaml)
  } else {
    try {
      await writeFile(c.out, r.value.yaml, { mode: 0o640, flag: c.force ? 'w' : 'wx' })
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code
      io.err(
        code === 'EEXIST'
          ? `pgmesh: ${c.out} exists; pass --force to replace it\n`
          : `pgmesh: cannot write ${c.out}: ${code ?? (e as Error).message}\n`,
      )
      return 1
    }
  }
  if (c.json) {
    io.err(`${JSON.stringify({ notes: r.value.notes }, null, 2)}\n`)
  } else {
    io.err(formatReport(r.value.notes, files))
    if (c.out !== undefined) {
      io.err(
        `pgmesh: wrote ${c.out} (${r.value.config.cluster.listeners.length} listener(s), ${r.value.config.cluster.databases.length} database(s)); check it with \`pgmesh config check ${c.out}\`\n`,
      )
    }
  }
  return 0
}
