// What the benchmarks that report latencies share: quantiles, and the CPU named beside every figure.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

export const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]

/** "AMD EPYC, 2 cores, AVX2": the model, the cores and the widest SIMD level, from /proc/cpuinfo. */
export function cpu() {
  const info = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : ''
  const flags = (info.match(/^flags\s*:(.*)$/m) ?? ['', ''])[1].split(' ')
  const simd = flags.includes('avx512f') ? 'AVX-512' : flags.includes('avx2') ? 'AVX2' : 'no AVX2'
  return `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores, ${simd}`
}

/**
 * The Python interpreter the peers run in: `--python <path>` (removed from `argv`), else the repository's
 * .venv-bench when it exists, else python3.
 */
export function pythonFrom(argv, root) {
  const i = argv.indexOf('--python')
  if (i >= 0) return argv.splice(i, 2)[1]
  const venv = path.join(root, '.venv-bench/bin/python')
  return fs.existsSync(venv) ? venv : 'python3'
}
