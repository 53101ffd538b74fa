#!/usr/bin/env node
import { writeFile } from 'node:fs/promises'
import { ClusterStatusSchema } from '@pgmesh/protocol'
import { bearer } from './cli/api-client.js'
import { commandHelp, parseCommandLine, USAGE } from './cli/args.js'
import { completionScript } from './cli/completion.js'
import { runConfigCommand } from './cli/config-command.js'
import { runImportCommand } from './cli/import-command.js'
import { runOperatorCommand } from './cli/operator-command.js'
import { runStart } from './cli/run-start.js'
import { formatStatus, jsonForTerminal } from './cli/status-table.js'
import { runVipCleanup } from './cli/vip-cleanup.js'
import { generateSecret } from './secret.js'
import { packageVersion } from './version.js'

async function status(api: string, json: boolean, tokenFile: string | undefined): Promise<number> {
  const auth = await bearer(tokenFile)
  if (typeof auth === 'string') {
    process.stderr.write(`pgmesh: ${auth}\n`)
    return 2
  }
  let res: Response
  try {
    res = await fetch(`${api}/v1/status`, { headers: auth, signal: AbortSignal.timeout(5000) })
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message
    process.stderr.write(`pgmesh: cannot reach the pgmesh API at ${api}: ${cause}\n`)
    return 1
  }
  const body: unknown = await res.json().catch(() => null)
  const parsed = ClusterStatusSchema.safeParse(body)
  if (res.status === 401) {
    process.stderr.write(
      `pgmesh: ${api} needs a token for reads: pass --token-file FILE or set PGMESH_TOKEN\n`,
    )
    return 1
  }
  if (!res.ok || !parsed.success) {
    process.stderr.write(`pgmesh: ${api}/v1/status answered ${res.status} with an unexpected body\n`)
    return 1
  }
  process.stdout.write(json ? `${jsonForTerminal(parsed.data)}\n` : formatStatus(parsed.data))
  return 0
}

async function keygen(out: string | undefined, force: boolean): Promise<number> {
  const secret = generateSecret()
  if (out === undefined) {
    process.stdout.write(secret)
    return 0
  }
  try {
    await writeFile(out, secret, { mode: 0o600, flag: force ? 'w' : 'wx' })
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code
    process.stderr.write(
      code === 'EEXIST'
        ? `pgmesh: ${out} exists; pass --force to replace it (every node then needs the new secret)\n`
        : `pgmesh: cannot write ${out}: ${code ?? (e as Error).message}\n`,
    )
    return 1
  }
  process.stderr.write(`pgmesh: wrote a new cluster secret to ${out} (mode 600); copy it to every node\n`)
  return 0
}

async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandLine(argv)
  if (!parsed.ok) {
    const sub = argv[0] === undefined ? undefined : commandHelp(argv[0])
    process.stderr.write(`pgmesh: ${parsed.message}\n\n${sub ?? USAGE}\n`)
    return 2
  }
  const c = parsed.command
  switch (c.kind) {
    case 'start':
      return runStart(c.config, c.flags)
    case 'status':
      return status(c.api, c.json, c.tokenFile)
    case 'keygen':
      return keygen(c.out, c.force)
    case 'config':
      return runConfigCommand(c)
    case 'operator':
      return runOperatorCommand(c)
    case 'import':
      return runImportCommand(c)
    case 'vip-cleanup':
      return runVipCleanup(c.config, c.flags)
    case 'version':
      process.stdout.write(`pgmesh ${packageVersion()}\n`)
      return 0
    case 'completion':
      process.stdout.write(completionScript(c.shell))
      return 0
    case 'help':
      process.stdout.write(`${(c.topic === undefined ? undefined : commandHelp(c.topic)) ?? USAGE}\n`)
      return 0
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(
      `pgmesh: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    )
    process.exit(1)
  },
)
