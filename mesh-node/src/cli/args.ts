import { parseArgs } from 'node:util'
import type { StartOverrides } from '../load-config.js'

export const USAGE = `pgmesh — one daemon on every proxy host: a gossip mesh in front of PostgreSQL

Usage:
  pgmesh start [--config FILE] [flags]     run a node
  pgmesh status [--api URL] [--json]       print the cluster view of a running node
  pgmesh keygen [--out FILE] [--force]     write a new cluster secret (stdout without --out)
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
  | { readonly kind: 'version' }
  | { readonly kind: 'help' }

export type ParsedArgs =
  | { readonly ok: true; readonly command: Command }
  | { readonly ok: false; readonly message: string }

export const DEFAULT_API_URL = 'http://127.0.0.1:7947'

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
        const api = values.api ?? DEFAULT_API_URL
        const url = /^https?:\/\//.test(api) ? api : `http://${api}`
        return {
          ok: true,
          command: { kind: 'status', api: url.replace(/\/+$/, ''), json: values.json === true },
        }
      }
      case 'keygen': {
        const { values } = parseArgs({
          args: rest,
          strict: true,
          options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' } },
        })
        return { ok: true, command: { kind: 'keygen', out: values.out, force: values.force === true } }
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
