// The CUDA-featured addon (`npm run build -- --features cuda`, built by `npm test` into target/cuda/) on this
// machine. Where there is no NVIDIA driver (CI, and any laptop without one) it must still load, run 'auto' on
// the CPU and say so, and refuse 'cuda' with ERR_DEVICE_UNAVAILABLE naming what is missing, without crashing
// the process. Where a driver is installed, the same calls must run on the GPU instead.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { createRequire } from 'node:module'
import { beforeAll, describe, expect, it } from 'vitest'
import { minCosine, readJson, reference, root, texts } from './helpers.mjs'

const require = createRequire(import.meta.url)
const binary = path.join(root, 'target', 'cuda', 'embedding-service.node')
const tiny = path.join(reference('tiny-bert-cls'), 'model')

function cudaBinding() {
  if (!fs.existsSync(binary)) {
    throw new Error(`${binary} is missing: run \`node scripts/build.mjs --features cuda --out=${path.relative(root, binary)}\` (npm test does)`)
  }
  const { createEmbeddingService } = require('../service.js')
  return createEmbeddingService(require(binary))
}

function driverInstalled() {
  try {
    return execFileSync('ldconfig', ['-p'], { encoding: 'utf8' }).includes('libcuda.so.1')
  } catch {
    return false
  }
}

// Linux x64 only: the CUDA build's compiler is fetched for it alone. vitest runs a skipped describe's body while
// collecting, so the binary is loaded in beforeAll, not there.
describe.runIf(process.platform === 'linux' && process.arch === 'x64')('the CUDA build', () => {
  let EmbeddingService
  beforeAll(() => {
    EmbeddingService = cudaBinding()
  })
  const expected = readJson(path.join(reference('tiny-bert-cls'), 'expected.json'))

  it('links nothing of CUDA: its only libraries are libc, libm, libgcc_s, libstdc++ and the loader', () => {
    cudaBinding()
    const dynamic = execFileSync('readelf', ['-d', binary], { encoding: 'utf8' })
    const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[(.*)\]/g)].map((m) => m[1])
    expect(needed).toContain('libc.so.6')
    const allowed = ['libc.so.6', 'libm.so.6', 'libgcc_s.so.1', 'libstdc++.so.6', 'ld-linux-x86-64.so.2']
    expect(needed.filter((lib) => !allowed.includes(lib))).toEqual([])
  })

  if (!driverInstalled()) {
    it("runs 'auto' on the CPU without a driver, says so, and matches sentence-transformers", async () => {
      const events = []
      const svc = new EmbeddingService({ model: tiny, device: 'auto', onProgress: (e) => events.push(e) })
      const vectors = await svc.embed(texts())
      expect(minCosine(vectors, expected.embeddings)).toBeGreaterThanOrEqual(0.99999)
      const status = svc.status()
      expect(status.device).toBe('cpu')
      expect(status.dtype).toBe('f32')
      const loading = events.filter((e) => e.status === 'loading_model').map((e) => e.details).join('\n')
      expect(loading).toMatch(/running on the CPU: no usable CUDA device: .*libcuda\.so\.1/)
      await svc.close()
    })

    it("refuses 'cuda' with ERR_DEVICE_UNAVAILABLE naming the missing driver, again and again, and closes", async () => {
      const svc = new EmbeddingService({ model: tiny, device: 'cuda' })
      for (let i = 0; i < 2; i++) {
        const err = await svc.embed(['hello']).catch((e) => e)
        expect(err).toBeInstanceOf(Error)
        expect(err.code).toBe('ERR_DEVICE_UNAVAILABLE')
        expect(err.message).toMatch(/NVIDIA driver \(libcuda\.so\.1\)/)
      }
      expect(svc.status().modelLoaded).toBe(false)
      await svc.close()
      // The process is intact: a CPU service from the same binary still works.
      const cpu = new EmbeddingService({ model: tiny, device: 'cpu' })
      expect((await cpu.embed(['hello'])).length).toBe(1)
      await cpu.close()
    })
  } else {
    it("runs 'auto' and 'cuda' on the GPU where the driver is installed", async () => {
      for (const device of ['auto', 'cuda']) {
        const svc = new EmbeddingService({ model: tiny, device, dtype: 'f32' })
        const vectors = await svc.embed(texts())
        expect(minCosine(vectors, expected.embeddings)).toBeGreaterThanOrEqual(0.99999)
        expect(svc.status().device).toMatch(/^cuda:0 \(/)
        await svc.close()
      }
    })
  }
})
