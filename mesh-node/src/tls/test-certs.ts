/** Throw-away certificates for tests (openssl at test time); no production code imports this. */
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TestCert {
  readonly cert: string
  readonly key: string
}

/** A throw-away CA in `dir` (openssl, EC P-256, valid for 2 days): ca.crt / ca.key. */
export async function makeCa(dir: string): Promise<TestCert> {
  const cert = join(dir, 'ca.crt')
  const key = join(dir, 'ca.key')
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=pgmesh test CA',
  ])
  return { cert, key }
}

/** A server certificate signed by `ca` for localhost and 127.0.0.1, written to `<name>.crt` / `<name>.key`. */
export async function makeServerCert(dir: string, ca: TestCert, name: string): Promise<TestCert> {
  const cert = join(dir, `${name}.crt`)
  const key = join(dir, `${name}.key`)
  const csr = join(dir, `${name}.csr`)
  const ext = join(dir, `${name}.ext`)
  await writeFile(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  await run('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    csr,
    '-subj',
    `/CN=${name}`,
  ])
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    ca.cert,
    '-CAkey',
    ca.key,
    '-CAcreateserial',
    '-out',
    cert,
    '-days',
    '2',
    '-extfile',
    ext,
  ])
  return { cert, key }
}
