/**
 * The control plane as a Worker (workerd, or any runtime with the module Worker API). Its config
 * is the JSON text binding PGMESH_CONTROL_PLANE; node tokens named by `tokenEnv` are bindings too
 * (the generated workerd config reads them from workerd's environment).
 */
import { type ControlPlane, createControlPlane } from '@pgmesh/control-api'

declare const PGMESH_VERSION: string

interface Env {
  readonly PGMESH_CONTROL_PLANE?: string
  readonly [binding: string]: unknown
}

// one per isolate: the timeline is kept across requests while the isolate lives
let plane: ControlPlane | undefined

function problem(code: string, message: string, issues?: unknown): Response {
  return Response.json(
    { error: { code, message, ...(issues === undefined ? {} : { issues }) } },
    { status: 500 },
  )
}

export default {
  fetch(request: Request, env: Env): Response | Promise<Response> {
    if (plane === undefined) {
      let input: unknown
      try {
        input = JSON.parse(env.PGMESH_CONTROL_PLANE ?? '')
      } catch {
        return problem('CP_CONFIG_INVALID', 'the PGMESH_CONTROL_PLANE binding is missing or not JSON')
      }
      const cp = createControlPlane(input, {
        env,
        version: PGMESH_VERSION,
        onError: (e) => console.error(JSON.stringify({ component: 'control-plane', err: String(e) })),
      })
      if (!cp.ok) return problem(cp.error.code, cp.error.message, cp.error.issues)
      plane = cp.value
    }
    return plane.app.fetch(request)
  },
}
