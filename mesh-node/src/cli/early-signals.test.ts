import assert from 'node:assert/strict'
import { EventEmitter } from 'node:events'
import { describe, it } from 'node:test'
import { EarlySignals } from './early-signals.js'

describe('signals while a node starts', () => {
  it('holds a reload and the first stop signal, and lets go of them on release', () => {
    const source = new EventEmitter()
    const early = new EarlySignals(source)
    assert.equal(source.listenerCount('SIGHUP'), 1)
    source.emit('SIGHUP')
    source.emit('SIGINT')
    source.emit('SIGTERM')
    assert.deepEqual(early.release(), { stop: 'SIGINT', reload: true })
    for (const s of ['SIGHUP', 'SIGINT', 'SIGTERM']) assert.equal(source.listenerCount(s), 0, s)
  })

  it('reports nothing when nothing arrived', () => {
    assert.deepEqual(new EarlySignals(new EventEmitter()).release(), { stop: null, reload: false })
  })
})
