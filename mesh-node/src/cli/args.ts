import { type ParseArgsConfig, parseArgs } from 'node:util'
import type { StartOverrides } from '../load-config.js'
import type { ConfigCommand } from './config-command.js'
import {
  IMPORT_HELP,
  IMPORT_OPTIONS,
  IMPORT_SYNOPSIS,
  type ImportCommand,
  parseImportArgs,
} from './import-command.js'
import type { OperatorCommand } from './operator-command.js'

export type Command =
  | { readonly kind: 'start'; readonly config: string | undefined; readonly flags: StartOverrides }
  | {
      readonly kind: 'status'
      readonly api: string
      readonly json: boolean
      readonly tokenFile?: string
    }
  | ({ readonly kind: 'import' } & ImportCommand)
  | { readonly kind: 'keygen'; readonly out: string | undefined; readonly force: boolean }
  | ({ readonly kind: 'config' } & ConfigCommand)
  | ({ readonly kind: 'operator' } & OperatorCommand)
  | { readonly kind: 'completion'; readonly shell: Shell }
  | { readonly kind: 'vip-cleanup'; readonly config: string | undefined; readonly flags: StartOverrides }
  | { readonly kind: 'version' }
  | { readonly kind: 'help'; readonly topic?: string }

export type ParsedArgs =
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly message: string }

export const SHELLS = ['bash', 'zsh'] as const
export type Shell = (typeof SHELLS)[number]

export const DEFAULT_API_URL = 'http://127.0.0.1:7947'

/** `--api` as a base URL: host:port or a URL, default the local node. */
export function apiUrl(api: string | undefined): string {
  const a = api ?? DEFAULT_API_URL
  return (/^https?:\/\//.test(a) ? a : `http://${a}`).replace(/\/+$/, '')
}

type Options = NonNullable<ParseArgsConfig['options']>

/**
 * One subcommand: its help, its options (which shell completion offers too) and its parser.
 * A new subcommand is one more entry in SUBCOMMANDS.
 */
export interface Subcommand {
  readonly name: string
  /** the lines `pgmesh help` lists it with */
  readonly synopsis: string
  /** what `pgmesh help NAME` prints below the synopsis */
  readonly help: string
  /** first positional words (config get|apply|check): offered by completion */
  readonly actions?: readonly string[]
  readonly options: Options
  /** argv after the subcommand's name; usage errors as values (parseArgs' throws are caught) */
  readonly parse: (args: readonly string[]) => ParsedArgs
}

const TOKEN_HELP =
  'API token: --token-file FILE (one token, the first line) or the PGMESH_TOKEN environment variable.'
const API_OPTION = { api: { type: 'string' } } as const satisfies Options

const startOptions = {
  config: { type: 'string', short: 'c' },
  id: { type: 'string' },
  priority: { type: 'string' },
  gossip: { type: 'string' },
  advertise: { type: 'string' },
  api: { type: 'string' },
  join: { type: 'string', multiple: true },
  'secret-file': { type: 'string' },
  'tokens-file': { type: 'string' },
  'data-dir': { type: 'string' },
  cluster: { type: 'string' },
  'log-level': { type: 'string' },
  'insecure-dev': { type: 'boolean' },
} as const satisfies Options

const operatorOptions = {
  ...API_OPTION,
  'token-file': { type: 'string' },
  json: { type: 'boolean' },
} as const satisfies Options

function operatorCommon(values: {
  api?: string | boolean
  'token-file'?: string | boolean
  json?: string | boolean
}) {
  return {
    api: apiUrl(typeof values.api === 'string' ? values.api : undefined),
    tokenFile: typeof values['token-file'] === 'string' ? values['token-file'] : undefined,
    json: values.json === true,
  }
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'start',
    synopsis: 'pgmesh start [--config FILE] [flags]     run a node',
    help: `Runs a node until SIGTERM/SIGINT (graceful: hands MASTER over, drains). SIGHUP re-reads the
config file (an unknown or misspelt field refuses the reload and says which) and the API tokens.

Flags (override the config file):
  --config FILE          YAML config (see deploy/examples/); every field: docs/configuration.md
  --id ID                node id (required, here or in the file)
  --priority N           1-254, higher wins MASTER (default 100)
  --gossip HOST:PORT     gossip listen address (default 0.0.0.0:7946; port 0 = any free port)
  --advertise HOST:PORT  address peers should dial when --gossip is a wildcard
  --api HOST:PORT        control API listen address (default 127.0.0.1:7947)
  --join HOST:PORT       a seed: any member's gossip address; repeatable
  --secret-file FILE     cluster secret from 'pgmesh keygen'
  --tokens-file FILE     API bearer tokens, one per line (node.api.tokensFile): enables the write endpoints
  --data-dir DIR         node key and incarnation (default ./.pgmesh/<id>)
  --cluster NAME         cluster name (default pgmesh)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  --insecure-dev         run without a secret: anyone who reaches the port can join. Never in production.`,
    options: startOptions,
    parse(args) {
      const { values } = parseArgs({
        args: [...args],
        strict: true,
        allowPositionals: false,
        options: startOptions,
      })
      const flags: StartOverrides = {
        ...(values.id === undefined ? {} : { id: values.id }),
        ...(values.priority === undefined ? {} : { priority: values.priority }),
        ...(values.gossip === undefined ? {} : { gossip: values.gossip }),
        ...(values.advertise === undefined ? {} : { advertise: values.advertise }),
        ...(values.api === undefined ? {} : { api: values.api }),
        ...(values.join === undefined ? {} : { join: values.join }),
        ...(values['secret-file'] === undefined ? {} : { secretFile: values['secret-file'] }),
        ...(values['tokens-file'] === undefined ? {} : { tokensFile: values['tokens-file'] }),
        ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
        ...(values.cluster === undefined ? {} : { cluster: values.cluster }),
        ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
        ...(values['insecure-dev'] === true ? { insecureDev: true } : {}),
      }
      return { ok: true, command: { kind: 'start', config: values.config, flags } }
    },
  },
  {
    name: 'status',
    synopsis:
      'pgmesh status [--api URL] [--json] [--token-file FILE]  print the cluster view of a running node',
    help: `Prints the members, the MASTER, the agreed primary and the listeners as the node at --api
(HOST:PORT or a URL; default ${DEFAULT_API_URL}) sees them. --json: the /v1/status body.
--token-file FILE (or PGMESH_TOKEN): the API token, for a node that protects reads. Peers' strings
are shown with control characters escaped.`,
    options: { ...API_OPTION, json: { type: 'boolean' }, 'token-file': { type: 'string' } },
    parse(args) {
      const { values } = parseArgs({
        args: [...args],
        strict: true,
        options: { api: { type: 'string' }, json: { type: 'boolean' }, 'token-file': { type: 'string' } },
      })
      return {
        ok: true,
        command: {
          kind: 'status',
          api: apiUrl(values.api),
          json: values.json === true,
          ...(values['token-file'] === undefined ? {} : { tokenFile: values['token-file'] }),
        },
      }
    },
  },
  {
    name: 'import',
    synopsis: IMPORT_SYNOPSIS,
    help: IMPORT_HELP,
    options: IMPORT_OPTIONS,
    parse: parseImportArgs,
  },
  {
    name: 'keygen',
    synopsis: 'pgmesh keygen [--out FILE] [--force]     write a new cluster secret (stdout without --out)',
    help: `Writes a new cluster secret (mode 600); copy it to every node (node.secretFile or --secret-file).
Refuses to overwrite FILE without --force: every node then needs the new secret.`,
    options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } },
    parse(args) {
      const { values } = parseArgs({
        args: [...args],
        strict: true,
        options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } },
      })
      return { ok: true, command: { kind: 'keygen', out: values.out, force: values.force === true } }
    },
  },
  {
    name: 'config',
    synopsis: `pgmesh config get [--api URL] [--json]   the cluster config the node runs, as YAML to edit
pgmesh config apply FILE [--api URL]     FILE's cluster section becomes the next version on every node
pgmesh config check FILE                 validate FILE offline: a node's whole config file, or a cluster section`,
    help: `get    prints the running cluster config as YAML with the baseVersion it was read at
apply  sends FILE's cluster section (a node config, a 'config get' output or a bare section); with a
       baseVersion it fails if someone else edited first
check  validates FILE offline with the messages apply gives: a node's config file whole (node section
       included), else the cluster section; an unknown field is an error with a "did you mean" hint
${TOKEN_HELP}`,
    actions: ['get', 'apply', 'check'],
    options: operatorOptions,
    parse(args) {
      const [action, ...tail] = args
      if (action !== 'apply' && action !== 'get' && action !== 'check') {
        return { ok: false, message: 'config needs one of: get, apply FILE, check FILE' }
      }
      const { values, positionals } = parseArgs({
        args: tail,
        strict: true,
        allowPositionals: true,
        options: operatorOptions,
      })
      if (action !== 'get' && positionals.length !== 1) {
        return { ok: false, message: `config ${action} needs exactly one FILE` }
      }
      if (action === 'get' && positionals.length > 0)
        return { ok: false, message: 'config get takes no FILE' }
      return {
        ok: true,
        command: { kind: 'config', action, file: positionals[0], ...operatorCommon(values) },
      }
    },
  },
  {
    name: 'maintenance',
    synopsis: `pgmesh maintenance on|off [--reason TEXT] [--api URL]
                                         take the node at --api out of service or back`,
    help: `on   the node hands MASTER (and the VIP) over at once, closes its listeners and drains their
     sessions, and keeps gossiping, voting and checking the databases; kept across restarts
off  back in service; preemption as usual
${TOKEN_HELP} --json for JSON output.`,
    actions: ['on', 'off'],
    options: { ...operatorOptions, reason: { type: 'string' } },
    parse(args) {
      const [action, ...tail] = args
      const { values, positionals } = parseArgs({
        args: tail,
        strict: true,
        allowPositionals: true,
        options: { ...operatorOptions, reason: { type: 'string' } },
      })
      if ((action !== 'on' && action !== 'off') || positionals.length > 0) {
        return { ok: false, message: 'maintenance needs on or off' }
      }
      const reason = typeof values.reason === 'string' ? values.reason : undefined
      if (action === 'off' && reason !== undefined) return { ok: false, message: '--reason goes with on' }
      return {
        ok: true,
        command: {
          kind: 'operator',
          action: 'maintenance',
          enabled: action === 'on',
          reason,
          ...operatorCommon(values),
        },
      }
    },
  },
  {
    name: 'vip',
    synopsis: `pgmesh vip cleanup [--config FILE] [--id ID] [--data-dir DIR]
                                         remove the VIP, its kernel fence and hand-over block a killed node left`,
    help: `cleanup  removes what a node killed on this host left of the VIP: the address, the kernel fence
         and the hand-over block (systemd runs it as ExecStopPost). Reads the node's config like start.`,
    actions: ['cleanup'],
    options: {
      config: { type: 'string', short: 'c' },
      id: { type: 'string' },
      'data-dir': { type: 'string' },
      'log-level': { type: 'string' },
    },
    parse(args) {
      const [action, ...tail] = args
      if (action !== 'cleanup') return { ok: false, message: 'vip needs: cleanup' }
      const { values } = parseArgs({
        args: tail,
        strict: true,
        options: {
          config: { type: 'string', short: 'c' },
          id: { type: 'string' },
          'data-dir': { type: 'string' },
          'log-level': { type: 'string' },
        },
      })
      const flags: StartOverrides = {
        ...(values.id === undefined ? {} : { id: values.id }),
        ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
        ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
      }
      return { ok: true, command: { kind: 'vip-cleanup', config: values.config, flags } }
    },
  },
  {
    name: 'members',
    synopsis:
      'pgmesh members remove ID [--api URL]     a dead member stops counting toward quorum on every node',
    help: `remove ID  a member that died for good still counts toward quorum until removed (from any other node)
${TOKEN_HELP} --json for JSON output.`,
    actions: ['remove'],
    options: operatorOptions,
    parse(args) {
      const [action, ...tail] = args
      const { values, positionals } = parseArgs({
        args: tail,
        strict: true,
        allowPositionals: true,
        options: operatorOptions,
      })
      if (action !== 'remove' || positionals.length !== 1)
        return { ok: false, message: 'members needs: remove ID' }
      return {
        ok: true,
        command: { kind: 'operator', action: 'remove', id: positionals[0]!, ...operatorCommon(values) },
      }
    },
  },
  {
    name: 'completion',
    synopsis: 'pgmesh completion bash|zsh               print a shell completion script',
    help: `bash: add  source <(pgmesh completion bash)  to ~/.bashrc, or save it as
      /etc/bash_completion.d/pgmesh (or ~/.local/share/bash-completion/completions/pgmesh)
zsh:  add  source <(pgmesh completion zsh)  to ~/.zshrc (it uses zsh's bash completion support)`,
    actions: SHELLS,
    options: {},
    parse(args) {
      const [shell, ...extra] = args
      if (!SHELLS.includes(shell as Shell) || extra.length > 0) {
        return { ok: false, message: `completion needs one of: ${SHELLS.join(', ')}` }
      }
      return { ok: true, command: { kind: 'completion', shell: shell as Shell } }
    },
  },
  {
    name: 'version',
    synopsis: 'pgmesh version | --version               print the version',
    help: 'Prints "pgmesh X.Y.Z".',
    options: {},
    parse: (args) =>
      args.length > 0
        ? { ok: false, message: 'version takes no arguments' }
        : { ok: true, command: { kind: 'version' } },
  },
  {
    name: 'help',
    synopsis: 'pgmesh help [COMMAND] | COMMAND --help   this overview, or one command in full',
    help: 'Without COMMAND: every command. With one: its flags and what it does.',
    get actions() {
      return SUBCOMMANDS.map((c) => c.name)
    },
    options: {},
    parse(args) {
      const [topic, ...extra] = args
      if (extra.length > 0) return { ok: false, message: 'help takes one COMMAND' }
      if (topic === undefined) return { ok: true, command: { kind: 'help' } }
      if (findSubcommand(topic) === undefined)
        return { ok: false, message: `no help for unknown command '${topic}'` }
      return { ok: true, command: { kind: 'help', topic } }
    },
  },
]

export function findSubcommand(name: string): Subcommand | undefined {
  return SUBCOMMANDS.find((c) => c.name === name)
}

export const USAGE = `pgmesh — one daemon on every proxy host: a gossip mesh in front of PostgreSQL

Usage:
${SUBCOMMANDS.map((c) =>
  c.synopsis
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n'),
).join('\n')}

'pgmesh help COMMAND' tells more about one command.
Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.`

/** `pgmesh help COMMAND`: the command's synopsis and its full help. */
export function commandHelp(name: string): string | undefined {
  const c = findSubcommand(name)
  if (c === undefined) return undefined
  return `Usage:\n${c.synopsis
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n\n${c.help}`
}

/** Parses argv (without node and script). Never throws: usage errors come back as values. */
export function parseCommandLine(argv: readonly string[]): ParsedArgs {
  const [sub, ...rest] = argv
  switch (sub) {
    case undefined:
    case '--help':
    case '-h':
      return { ok: true, command: { kind: 'help' } }
    case '--version':
    case '-v':
      return { ok: true, command: { kind: 'version' } }
  }
  const c = findSubcommand(sub)
  if (c === undefined) return { ok: false, message: `unknown command '${sub}'` }
  if (rest.includes('--help') || rest.includes('-h'))
    return { ok: true, command: { kind: 'help', topic: c.name } }
  try {
    return c.parse(rest)
  } catch (e) {
    return { ok: false, message: e instanceof Error ? e.message : String(e) }
  }
}
