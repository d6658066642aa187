// Copied into a folder-mcp checkout by scripts/test-daemon.mjs and run by the daemon's vitest. The Python
// service's idle keep-alive, kept: after `keepAliveSeconds` of no work the model's memory goes back, while the
// daemon (its health check, its bridge's load() and verifyLoaded(), its registry) keeps seeing a usable model,
// and the next request reloads it and answers as before.
// 1. As the daemon's own integration test builds its service: `testConfig: { keepAliveSeconds: 1 }`.
// 2. Through its registry and PythonModelBridge, which pass no testConfig: the keep-alive comes from the
//    daemon's system-configuration.json (5 minutes at d01bb52), and FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS, which
//    its Python child reads too, shortens it for this run.
import { afterAll, describe, expect, it } from 'vitest'
import { performance } from 'perf_hooks'
import { PythonEmbeddingService } from '../../src/infrastructure/embeddings/python-embedding-service.js'
import { PythonModelBridge } from '../../src/infrastructure/embeddings/bridges/python-model-bridge.js'
import { PythonEmbeddingServiceRegistry, createPythonEmbeddingService } from '../../src/daemon/factories/model-factories.js'

const MODEL_ID = 'gpu:paraphrase-multilingual-minilm'
const HUB_ID = 'sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2'
const mb = (bytes: number) => Math.round(bytes / 1048576)
const searchChunk = (content: string): any => ({
  content, chunkIndex: 0, startPosition: 0, endPosition: content.length, tokenCount: undefined,
  metadata: { sourceFile: 'search-query', sourceType: 'text', totalChunks: 1, hasOverlap: false },
})

// The registry builds the backend without a progress callback, so there is no event to wait on here: re-read
// its health check at a short interval (as the daemon itself does) until the keep-alive has unloaded the model.
async function modelReturned(service: any, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  while ((await service.healthCheck()).model_resident) {
    if (Date.now() > deadline) throw new Error('the keep-alive did not unload the model')
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe('the keep-alive returns the model\'s memory, and the daemon never sees it gone', () => {
  afterAll(async () => {
    await PythonEmbeddingServiceRegistry.getInstance().cleanup()
  })

  it('reads the daemon\'s system-configuration.json, as its Python service does', async () => {
    const saved = process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS
    delete process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS
    try {
      const health = await (new PythonEmbeddingService({ modelName: '' } as any) as any).healthCheck()
      expect(health.keep_alive_seconds).toBe(5 * 60)
    } finally {
      if (saved !== undefined) process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS = saved
    }
  })

  it('testConfig.keepAliveSeconds: 1: memory back, still healthy, the next search equal to before', async () => {
    let unloaded!: () => void
    const idleEvent = new Promise<void>((resolve) => (unloaded = resolve))
    const service: any = new PythonEmbeddingService({
      modelName: 'all-MiniLM-L6-v2', timeout: 30000, autoRestart: false, maxRestartAttempts: 0, restartDelay: 1000,
      testConfig: { crawlingPauseSeconds: 10, keepAliveSeconds: 1, shutdownGracePeriodSeconds: 3 },
      // Not a daemon option: the adapter's progress events, so that this test waits on the unload itself.
      onProgress: (e: any) => e.status === 'idle' && unloaded(),
    } as any)
    const baseline = process.memoryUsage().rss
    await service.initialize()
    const [before] = await service.generateEmbeddings([searchChunk('where do I keep the spare inner tube')])
    const loaded = process.memoryUsage().rss
    expect((await service.healthCheck()).model_resident).toBe(true)
    await idleEvent
    const idle = process.memoryUsage().rss
    const health = await service.healthCheck()
    expect(health).toMatchObject({ status: 'healthy', model_loaded: true, model_resident: false, keep_alive_seconds: 1 })
    const [after] = await service.generateEmbeddings([searchChunk('where do I keep the spare inner tube')])
    expect(after.vector).toEqual(before.vector)
    const stats = service.getServiceStats()
    console.log(`[native-backend] keep-alive 1 s: RSS ${mb(baseline)} MB before load, ${mb(loaded)} MB loaded, ${mb(idle)} MB after the idle unload (${mb(loaded - idle)} of ${mb(loaded - baseline)} MB back); loads ${stats.loadCount}, unloads ${stats.unloadCount}`)
    expect(loaded - idle).toBeGreaterThanOrEqual((loaded - baseline) / 2)
    expect(stats).toMatchObject({ loadCount: 2, unloadCount: 1 })
    await service.shutdown()
  }, 120000)

  it('through the registry and the bridge: verifyLoaded true at once, a new bridge loads without waiting', async () => {
    process.env.FOLDER_MCP_TEST_KEEP_ALIVE_SECONDS = '1'
    const lines: string[] = []
    const logger: any = Object.fromEntries(['info', 'warn', 'error', 'debug'].map((level) => [level, (msg: string) => lines.push(`${level} ${msg}`)]))
    const bridge = new PythonModelBridge({ modelId: MODEL_ID, modelType: 'python', modelName: HUB_ID } as any, logger)
    await bridge.load()
    const [before] = await bridge.generateEmbeddings([searchChunk('how much memory comes back after unloading')])
    const singleton: any = await createPythonEmbeddingService({ modelName: HUB_ID } as any)
    expect((await singleton.healthCheck()).keep_alive_seconds).toBe(1)
    await modelReturned(singleton)
    lines.length = 0

    let started = performance.now()
    expect(await bridge.verifyLoaded()).toBe(true)
    const verifyMs = performance.now() - started
    started = performance.now()
    const second = new PythonModelBridge({ modelId: MODEL_ID, modelType: 'python', modelName: HUB_ID } as any, logger)
    await second.load()
    const loadMs = performance.now() - started
    expect(await second.isLoaded()).toBe(true)
    // The bridge polls (and logs that it waits) only when the health check says the model is not loaded.
    expect(lines.filter((l) => /Waiting for model|Still waiting|Timeout waiting/.test(l))).toEqual([])
    expect(lines.some((l) => /already loaded \(singleton reuse\)/.test(l))).toBe(true)
    expect((await singleton.healthCheck()).model_resident).toBe(false)

    const [after] = await second.generateEmbeddings([searchChunk('how much memory comes back after unloading')])
    expect(after!.vector).toEqual(before!.vector)
    expect((await singleton.healthCheck()).model_resident).toBe(true)
    console.log(`[native-backend] after the idle unload: verifyLoaded ${verifyMs.toFixed(1)} ms, a new bridge's load() ${loadMs.toFixed(1)} ms, no waiting log`)
  }, 120000)
})
