import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseCommandLine } from './args.js'
import { type ImportCommand, runImportCommand } from './import-command.js'

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) }, out, err }
}

describe('pgmesh import command', () => {
  let dir = ''
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-import-cmd-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('parses its flags, --member repeatable', () => {
    const r = parseCommandLine([
      'import',
      '--haproxy',
      'h.cfg',
      '--keepalived',
      'k.conf',
      '--node-id',
      'p1',
      '--member',
      'p2=105',
      '--member',
      'p3=100',
      '--out',
      'o.yaml',
      '--force',
    ])
    assert.ok(r.ok)
    assert.deepEqual(r.command, {
      kind: 'import',
      haproxy: 'h.cfg',
      keepalived: 'k.conf',
      nodeId: 'p1',
      members: ['p2=105', 'p3=100'],
      cluster: undefined,
      out: 'o.yaml',
      force: true,
      json: false,
    })
    const bad = parseCommandLine(['import', '--haproxy'])
    assert.equal(bad.ok, false)
  })

  it('writes the config and the report; refuses to overwrite without --force', async () => {
    const h = join(dir, 'haproxy.cfg')
    await writeFile(h, 'listen pg\n  bind :6432\n  retries 3\n  server a 10.0.0.1:6432\n')
    const out = join(dir, 'out.yaml')
    const c: ImportCommand = {
      haproxy: h,
      keepalived: undefined,
      nodeId: 'n1',
      members: [],
      cluster: 'main',
      out,
      force: false,
      json: false,
    }
    const first = capture()
    assert.equal(await runImportCommand(c, first.io), 0, first.err.join(''))
    assert.match(await readFile(out, 'utf8'), /name: main\n/)
    assert.match(first.err.join(''), /UNMAPPED .*haproxy\.cfg:3 retries 3/)
    const second = capture()
    assert.equal(await runImportCommand(c, second.io), 1)
    assert.match(second.err.join(''), /exists; pass --force/)
  })

  it('a priority-less --member is a usage error', async () => {
    const k = join(dir, 'keepalived.conf')
    await writeFile(k, 'vrrp_instance V {\n  priority 100\n}\n')
    const cap = capture()
    const code = await runImportCommand(
      {
        haproxy: undefined,
        keepalived: k,
        nodeId: 'n1',
        members: ['n2'],
        cluster: undefined,
        out: undefined,
        force: false,
        json: false,
      },
      cap.io,
    )
    assert.equal(code, 2)
    assert.match(cap.err.join(''), /must be ID=PRIORITY/)
  })
})
