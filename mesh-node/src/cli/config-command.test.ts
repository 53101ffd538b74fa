import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parseCommandLine } from './args.js'
import { runConfigCommand } from './config-command.js'

function capture() {
  const out: string[] = []
  const err: string[] = []
  return { io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t) }, out, err }
}

describe('pgmesh config', () => {
  let dir = ''
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-config-cli-'))
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('parses get / apply FILE / check FILE, and refuses the rest', () => {
    const get = parseCommandLine(['config', 'get', '--api', '127.0.0.1:9000', '--json'])
    assert.ok(get.ok && get.command.kind === 'config')
    assert.equal(get.command.action, 'get')
    assert.equal(get.command.api, 'http://127.0.0.1:9000')
    const apply = parseCommandLine(['config', 'apply', 'x.yaml', '--token-file', 't'])
    assert.ok(apply.ok && apply.command.kind === 'config')
    assert.equal(apply.command.file, 'x.yaml')
    assert.equal(apply.command.tokenFile, 't')
    assert.ok(!parseCommandLine(['config', 'apply']).ok)
    assert.ok(!parseCommandLine(['config', 'push', 'x']).ok)
    assert.ok(!parseCommandLine(['config', 'get', 'extra']).ok)
  })

  it('check validates the cluster section offline with the API messages; exit 2 on problems', async () => {
    const bad = join(dir, 'bad.yaml')
    await writeFile(
      bad,
      [
        'node: { id: n1 }',
        'cluster:',
        '  listeners:',
        '    - { name: w, bind: "nope", role: primary }',
        '  bogus: 1',
        '',
      ].join('\n'),
    )
    const c = capture()
    assert.equal(
      await runConfigCommand(
        { action: 'check', file: bad, api: '', tokenFile: undefined, json: false },
        c.io,
      ),
      2,
    )
    const text = c.err.join('')
    assert.match(text, /cluster\.listeners\.0\.bind: /)
    assert.match(text, /cluster\.bogus: unknown field/)
    const good = join(dir, 'good.yaml')
    await writeFile(
      good,
      'listeners:\n  - { name: s, bind: "127.0.0.1:5000", role: servers, servers: [{ address: "127.0.0.1:5432" }] }\n',
    )
    const ok = capture()
    assert.equal(
      await runConfigCommand(
        { action: 'check', file: good, api: '', tokenFile: undefined, json: false },
        ok.io,
      ),
      0,
    )
    assert.match(ok.out.join(''), /valid \(1 listener/)
    const missing = capture()
    assert.equal(
      await runConfigCommand(
        { action: 'check', file: join(dir, 'nope.yaml'), api: '', tokenFile: undefined, json: false },
        missing.io,
      ),
      2,
    )
    assert.match(missing.err.join(''), /CONFIG_NOT_FOUND|cannot read/)
  })
  it('check covers the whole file, node section included: `prioirty: 5` is refused with a hint', async () => {
    const file = join(dir, 'typo.yaml')
    await writeFile(file, 'node:\n  id: n1\n  insecureDev: true\n  prioirty: 5\ncluster:\n  name: c1\n')
    const c = capture()
    const run = (f: string) =>
      runConfigCommand({ action: 'check', file: f, api: '', tokenFile: undefined, json: false }, c.io)
    assert.equal(await run(file), 2)
    assert.match(c.err.join(''), /node\.prioirty: unknown field \(did you mean "priority"\?\)/)
    const fixed = join(dir, 'fixed.yaml')
    await writeFile(fixed, 'node:\n  id: n1\n  insecureDev: true\n  priority: 5\ncluster:\n  name: c1\n')
    assert.equal(await run(fixed), 0)
    assert.match(c.out.join(''), /the node and cluster config are valid/)
    // the output of `config get` (baseVersion + cluster): its top level is strict too
    const edit = join(dir, 'edit.yaml')
    await writeFile(edit, 'baseVerison: 3\ncluster:\n  name: c1\n')
    assert.equal(await run(edit), 2)
    assert.match(c.err.join(''), /baseVerison: unknown field \(did you mean "baseVersion"\?\)/)
  })
})
