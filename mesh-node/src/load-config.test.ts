import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { loadConfig } from './load-config.js'

describe('loadConfig', () => {
  let dir = ''
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pgmesh-config-'))
  })
  after(() => rm(dir, { recursive: true, force: true }))

  it('merges flags over the file and resolves paths against the file', async () => {
    const file = join(dir, 'node.yaml')
    await writeFile(
      file,
      'node:\n  id: from-file\n  priority: 110\n  secretFile: secret\n  join: ["10.0.0.1:7946"]\ncluster:\n  name: prod\n',
    )
    const r = await loadConfig(
      file,
      { id: 'n9', join: ['127.0.0.1:7000'], gossip: '127.0.0.1:0' },
      '/somewhere',
    )
    assert.ok(r.ok, JSON.stringify(r))
    assert.equal(r.value.node.id, 'n9')
    assert.equal(r.value.node.priority, 110)
    assert.equal(r.value.node.secretFile, join(dir, 'secret'))
    assert.deepEqual(r.value.node.join, [{ host: '127.0.0.1', port: 7000 }])
    assert.deepEqual(r.value.node.gossip.listen, { host: '127.0.0.1', port: 0 })
    assert.equal(r.value.node.dataDir, '/somewhere/.pgmesh/n9')
    assert.equal(r.value.cluster.name, 'prod')
  })

  it('resolves api.tokensFile against the file, --tokens-file against the working directory', async () => {
    const file = join(dir, 'tokens.yaml')
    await writeFile(file, 'node:\n  id: t1\n  insecureDev: true\n  api: { tokensFile: api.tokens }\n')
    const fromFile = await loadConfig(file, {}, '/somewhere')
    assert.ok(fromFile.ok, JSON.stringify(fromFile))
    assert.equal(fromFile.value.node.api.tokensFile, join(dir, 'api.tokens'))
    const fromFlag = await loadConfig(file, { tokensFile: 'other.tokens' }, '/somewhere')
    assert.ok(fromFlag.ok)
    assert.equal(fromFlag.value.node.api.tokensFile, '/somewhere/other.tokens')
  })

  it('refuses a misspelt field in the file, naming it with a hint', async () => {
    const file = join(dir, 'typo.yaml')
    await writeFile(file, 'node:\n  id: t1\n  insecureDev: true\n  prioirty: 5\n')
    const r = await loadConfig(file, {}, dir)
    assert.ok(!r.ok)
    assert.deepEqual(r.error.issues, [
      { path: 'node.prioirty', message: 'unknown field (did you mean "priority"?)' },
    ])
  })

  it('works from flags alone', async () => {
    const r = await loadConfig(undefined, { id: 'solo', insecureDev: true, priority: '7' }, dir)
    assert.ok(r.ok)
    assert.equal(r.value.node.priority, 7)
    assert.equal(r.value.node.insecureDev, true)
  })

  it('names the file and line of a YAML syntax error', async () => {
    const file = join(dir, 'broken.yaml')
    await writeFile(file, 'node:\n  id: a\n   priority: [\n')
    const r = await loadConfig(file, {}, dir)
    assert.ok(!r.ok)
    assert.equal(r.error.code, 'CONFIG_PARSE')
    assert.match(r.error.message, /broken\.yaml.*line \d/)
  })

  it('reports a missing file, a non-mapping document and bad flag values', async () => {
    const missing = await loadConfig(join(dir, 'nope.yaml'), {}, dir)
    assert.ok(!missing.ok)
    assert.equal(missing.error.code, 'CONFIG_NOT_FOUND')
    const list = join(dir, 'list.yaml')
    await writeFile(list, '- a\n- b\n')
    const notMap = await loadConfig(list, {}, dir)
    assert.ok(!notMap.ok)
    assert.equal(notMap.error.code, 'CONFIG_PARSE')
    const flags = await loadConfig(
      undefined,
      { id: 'x', priority: 'high', api: 'nowhere', insecureDev: true },
      dir,
    )
    assert.ok(!flags.ok)
    assert.deepEqual(flags.error.issues?.map((i) => i.path).sort(), ['node.api.listen', 'node.priority'])
  })
})
