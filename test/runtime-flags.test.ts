import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { NODE_FLAGS, ROOT } from './helpers/processes.js'

const read = (...p: string[]) => readFileSync(join(ROOT, ...p), 'utf8')
const flags = NODE_FLAGS.join(' ')

/** Every way pgmesh is launched gives node the same flags, and so do the tests and benchmarks. */
describe('the node runtime flags', () => {
  const launchers: [string, string, RegExp][] = [
    [
      'the systemd unit',
      read('deploy', 'systemd', 'pgmesh.service'),
      /^ExecStart=\/usr\/bin\/node (.*?) \S*pgmesh\.mjs start/m,
    ],
    [
      'the .deb launcher',
      read('deploy', 'deb', 'build.sh'),
      /^exec \/usr\/lib\/pgmesh\/bin\/node (.*?) \S*pgmesh\.mjs "\$@"/m,
    ],
    ['the npm launcher', read('mesh-node', 'bin', 'pgmesh.js'), /^#!\/usr\/bin\/env -S node (.*)$/m],
    [
      'deploy/demo.sh',
      read('deploy', 'demo.sh'),
      /^CLI=\(node (.*?) "\$ROOT\/mesh-node\/dist\/pgmesh\.mjs"\)/m,
    ],
    ['deploy/vip-lab.sh', read('deploy', 'vip-lab.sh'), /^cli\(\) \{ node (.*?) "\$ROOT/m],
  ]
  for (const [name, text, pattern] of launchers) {
    it(`${name} runs node with ${flags}`, () => {
      const m = pattern.exec(text)
      assert.ok(m, `${name}: the launch line has an unexpected shape`)
      assert.equal(m[1], flags)
    })
  }

  it('the flags are ones this node accepts', () => {
    assert.ok(
      NODE_FLAGS.every((f) => process.allowedNodeEnvironmentFlags.has(f.split('=')[0]!)),
      `${flags}: not all are node flags`,
    )
  })
})
