import { parseArgs } from 'node:util'
import type { StartOverrides } from '../load-config.js'
import type { ConfigCommand } from './config-command.js'
import type { OperatorCommand } from './operator-command.js'

export const USAGE = `pgmesh — one daemon on every proxy host: a gossip mesh in front of PostgreSQL

Usage:
  pgmesh start [--config FILE] [flags]     run a node
  pgmesh status [--api URL] [--json]       print the cluster view of a running node
  pgmesh keygen [--out FILE] [--force]     write a new cluster secret (stdout without --out)
  pgmesh config get [--api URL] [--json]   the cluster config the node runs, as YAML to edit
  pgmesh config apply FILE [--api URL]     FILE's cluster section becomes the next version on every node
  pgmesh config check FILE                 validate FILE's cluster section offline (same messages as apply)
      (config get/apply: --token-file FILE, or the PGMESH_TOKEN environment variable, for the API token)
  pgmesh maintenance on|off [--reason TEXT] [--api URL]
                                           take the node at --api out of service (it hands MASTER over,
                                           closes its listeners, drains) or back
  pgmesh members remove ID [--api URL]     a dead member stops counting toward quorum on every node
      (maintenance/members: --token-file FILE or PGMESH_TOKEN for the API token; --json for JSON output)
  pgmesh vip cleanup [--config FILE] [--id ID] [--data-dir DIR]
                                           remove the VIP, its kernel fence and hand-over block that a node
                                           killed on this host left (systemd runs it as ExecStopPost)
  pgmesh version | help

start flags (override the config file):
  --config FILE          YAML config (see deploy/examples/)
  --id ID                node id (required, here or in the file)
  --priority N           1-254, higher wins MASTER (default 100)
  --gossip HOST:PORT     gossip listen address (default 0.0.0.0:7946; port 0 = any free port)
  --advertise HOST:PORT  address peers should dial when --gossip is a wildcard
  --api HOST:PORT        control API listen address (default 127.0.0.1:7947)
  --join HOST:PORT       a seed: any member's gossip address; repeatable
  --secret-file FILE     cluster secret from 'pgmesh keygen'
  --data-dir DIR         node key and incarnation (default ./.pgmesh/<id>)
  --cluster NAME         cluster name (default pgmesh)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  --insecure-dev         run without a secret: anyone who reaches the port can join. Never in production.

Exit status: 0 ok, 1 runtime failure, 2 bad usage or configuration.`

export type Command =
  | { readonly kind: 'start'; readonly config: string | undefined; readonly flags: StartOverrides }
  | { readonly kind: 'status'; readonly api: string; readonly json: boolean }
  | { readonly kind: 'keygen'; readonly out: string | undefined; readonly force: boolean }
  | ({ readonly kind: 'config' } & ConfigCommand)
  | ({ readonly kind: 'operator' } & OperatorCommand)
  | { readonly kind: 'vip-cleanup'; readonly config: string | undefined; readonly flags: StartOverrides }
  | { readonly kind: 'version' }
  | { readonly kind: 'help' }

export type ParsedArgs =
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly message: string }

export const DEFAULT_API_URL = 'http://127.0.0.1:7947'

/** `--api` as a base URL: host:port or a URL, default the local node. */
export function apiUrl(api: string | undefined): string {
  const a = api ?? DEFAULT_API_URL
  return (/^https?:\/\//.test(a) ? a : `http://${a}`).replace(/\/+$/, '')
}

/** Parses argv (without node and script). Never throws: usage errors come back as values. */
export function parseCommandLine(argv: readonly string[]): ParsedArgs {
  const [sub, ...rest] = argv
  try {
    switch (sub) {
      case 'start': {
        const { values } = parseArgs({
          args: rest,
          strict: true,
          allowPositionals: false,
          options: {
            config: { type: 'string', short: 'c' },
            id: { type: 'string' },
            priority: { type: 'string' },
            gossip: { type: 'string' },
            advertise: { type: 'string' },
            api: { type: 'string' },
            join: { type: 'string', multiple: true },
            'secret-file': { type: 'string' },
            'data-dir': { type: 'string' },
            cluster: { type: 'string' },
            'log-level': { type: 'string' },
            'insecure-dev': { type: 'boolean' },
          },
        })
        const flags: StartOverrides = {
          ...(values.id === undefined ? {} : { id: values.id }),
          ...(values.priority === undefined ? {} : { priority: values.priority }),
          ...(values.gossip === undefined ? {} : { gossip: values.gossip }),
          ...(values.advertise === undefined ? {} : { advertise: values.advertise }),
          ...(values.api === undefined ? {} : { api: values.api }),
          ...(values.join === undefined ? {} : { join: values.join }),
          ...(values['secret-file'] === undefined ? {} : { secretFile: values['secret-file'] }),
          ...(values['data-dir'] === undefined ? {} : { dataDir: values['data-dir'] }),
          ...(values.cluster === undefined ? {} : { cluster: values.cluster }),
          ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] }),
          ...(values['insecure-dev'] === true ? { insecureDev: true } : {}),
        }
        return { ok: true, command: { kind: 'start', config: values.config, flags } }
      }
      case 'status': {
        const { values } = parseArgs({
          args: rest,
          strict: true,
          options: { api: { type: 'string' }, json: { type: 'boolean' } },
        })
        return { ok: true, command: { kind: 'status', api: apiUrl(values.api), json: values.json === true } }
      }
      case 'config': {
        const [action, ...tail] = rest
        if (action !== 'apply' && action !== 'get' && action !== 'check') {
          return { ok: false, message: 'config needs one of: get, apply FILE, check FILE' }
        }
        const { values, positionals } = parseArgs({
          args: tail,
          strict: true,
          allowPositionals: true,
          options: { api: { type: 'string' }, 'token-file': { type: 'string' }, json: { type: 'boolean' } },
        })
        if (action !== 'get' && positionals.length !== 1) {
          return { ok: false, message: `config ${action} needs exactly one FILE` }
        }
        if (action === 'get' && positionals.length > 0)
          return { ok: false, message: 'config get takes no FILE' }
        return {
          ok: true,
          command: {
            kind: 'config',
            action,
            file: positionals[0],
            api: apiUrl(values.api),
            tokenFile: values['token-file'],
            json: values.json === true,
          },
        }
      }
      case 'maintenance':
      case 'members': {
        const [action, ...tail] = rest
        const { values, positionals } = parseArgs({
          args: tail,
          strict: true,
          allowPositionals: true,
          options: {
            api: { type: 'string' },
            'token-file': { type: 'string' },
            json: { type: 'boolean' },
            ...(sub === 'maintenance' ? { reason: { type: 'string' as const } } : {}),
          },
        })
        const common = {
          api: apiUrl(values.api),
          tokenFile: values['token-file'],
          json: values.json === true,
        }
        if (sub === 'maintenance') {
          if ((action !== 'on' && action !== 'off') || positionals.length > 0) {
            return { ok: false, message: 'maintenance needs on or off' }
          }
          const reason = typeof values.reason === 'string' ? values.reason : undefined
          if (action === 'off' && reason !== undefined) return { ok: false, message: '--reason goes with on' }
          return {
            ok: true,
            command: { kind: 'operator', action: 'maintenance', enabled: action === 'on', reason, ...common },
          }
        }
        if (action !== 'remove' || positionals.length !== 1) {
          return { ok: false, message: 'members needs: remove ID' }
        }
        return { ok: true, command: { kind: 'operator', action: 'remove', id: positionals[0]!, ...common } }
      }
      case 'keygen': {
        const { values } = parseArgs({
          args: rest,
          strict: true,
          options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } },
        })
        return { ok: true, command: { kind: 'keygen', out: values.out, force: values.force === true } }
      }
      case 'vip': {
        const [action, ...tail] = rest
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
      }
      case 'version':
      case '--version':
      case '-v':
        return { ok: true, command: { kind: 'version' } }
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return { ok: true, command: { kind: 'help' } }
      default:
        return { ok: false, message: `unknown command '${sub}'` }
    }
  } catch (e) {
    return { ok: false, message: e instanceof Error ? e.message : String(e) }
  }
}
