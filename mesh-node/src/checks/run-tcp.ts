import { connect } from 'node:net'
import type { CheckResult, CheckRunner } from './check-result.js'
import { errorMessage } from './check-result.js'

/** Passes when a TCP connection to host:port is established within `timeoutMs`; then closed at once. */
export const runTcpCheck: CheckRunner<'tcp'> = (check, signal) =>
  new Promise<CheckResult>((resolve) => {
    if (signal.aborted) {
      resolve({ ok: false, error: 'aborted' })
      return
    }
    const socket = connect({ host: check.host, port: check.port })
    const done = (r: CheckResult) => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
      socket.removeAllListeners('connect')
      socket.on('error', () => undefined)
      socket.destroy()
      resolve(r)
    }
    const timer = setTimeout(
      () => done({ ok: false, error: `timed out after ${check.timeoutMs} ms` }),
      check.timeoutMs,
    )
    const onAbort = () => done({ ok: false, error: 'aborted' })
    signal.addEventListener('abort', onAbort, { once: true })
    socket.once('connect', () => done({ ok: true }))
    socket.once('error', (e) => done({ ok: false, error: errorMessage(e) }))
  })
