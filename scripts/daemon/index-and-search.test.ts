// Copied into a folder-mcp checkout by scripts/test-daemon.mjs and run by the daemon's vitest with
// PythonEmbeddingService resolved to the native backend. Index a small folder with the daemon's own pipeline
// (DI container -> IndexingOrchestrator.processFile -> registry -> backend, KeyBERT key phrases, SQLite vec0
// store), then search it the way the daemon's REST search does (its PythonModelBridge embeds the query, a vec0
// MATCH ranks the chunks).
import { afterAll, describe, expect, it } from 'vitest'
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'fs'
import { tmpdir } from 'os'
import { join } from 'path'
import { setupDependencyInjection } from '../../src/di/setup.js'
import { MODULE_TOKENS } from '../../src/di/interfaces.js'
import { SQLiteVecStorage } from '../../src/infrastructure/embeddings/sqlite-vec/sqlite-vec-storage.js'
import { PythonModelBridge } from '../../src/infrastructure/embeddings/bridges/python-model-bridge.js'
import { PythonEmbeddingServiceRegistry } from '../../src/daemon/factories/model-factories.js'
import { PythonEmbeddingService } from '../../src/infrastructure/embeddings/python-embedding-service.js'

const MODEL_ID = 'gpu:paraphrase-multilingual-minilm'
const HUB_ID = 'sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2'

describe('folder-mcp indexes and searches a folder with the native backend', () => {
  const folder = mkdtempSync(join(tmpdir(), 'native-backend-folder-'))
  cpSync(process.env.NATIVE_BACKEND_DOCS!, folder, { recursive: true })
  const files = readdirSync(folder).map((f) => join(folder, f))
  let storage: SQLiteVecStorage
  let container: any

  afterAll(async () => {
    await storage?.close()
    await PythonEmbeddingServiceRegistry.getInstance().cleanup()
    rmSync(folder, { recursive: true, force: true })
  })

  it('the import alias is in force: the daemon gets the native backend', () => {
    expect(new (PythonEmbeddingService as any)({}).constructor.name).toBe('NativeEmbeddingBackend')
  })

  it('indexes every file through the IndexingOrchestrator, with KeyBERT key phrases, into the vec0 store', async () => {
    container = setupDependencyInjection({ logLevel: 'error', folderPath: folder })
    const orchestrator: any = await container.resolveAsync(MODULE_TOKENS.APPLICATION.INDEXING_WORKFLOW)
    storage = new SQLiteVecStorage({ folderPath: folder, modelName: MODEL_ID, modelDimension: 384 })
    await storage.getDatabaseManager().initialize()
    let chunks = 0
    for (const file of files) {
      const result = await orchestrator.processFile(file, MODEL_ID)
      expect(result.embeddingsCreated).toBeGreaterThan(0)
      expect(result.embeddings).toHaveLength(result.metadata.length)
      for (const e of result.embeddings) expect(e.vector ?? e).toHaveLength(384)
      await storage.addEmbeddings(result.embeddings, result.metadata)
      chunks += result.embeddingsCreated
    }
    const db = storage.getDatabaseManager().getDatabase()
    const rows = db.prepare('SELECT key_phrases FROM chunks').all() as { key_phrases: string | null }[]
    expect(rows).toHaveLength(chunks)
    const phrases = rows.map((r) => JSON.parse(r.key_phrases ?? '[]'))
    // Every chunk carries key phrases, and they come from KeyBERT (lowercase n-grams with similarity scores).
    expect(phrases.every((p) => p.length > 0)).toBe(true)
    const first = phrases[0]![0]
    expect(typeof (first.text ?? first)).toBe('string')
    console.log(`[native-backend] indexed ${files.length} files, ${chunks} chunks; key phrases of chunk 1: ${JSON.stringify(phrases[0].slice(0, 5))}`)
  }, 600000)

  it('a search through the daemon\'s bridge and a vec0 MATCH finds the file that answers it', async () => {
    const bridge = new PythonModelBridge({ modelId: MODEL_ID, modelType: 'python', modelName: HUB_ID })
    await bridge.load()
    expect(await bridge.verifyLoaded()).toBe(true)
    const db = storage.getDatabaseManager().getDatabase()
    const search = async (query: string) => {
      const q = await bridge.generateEmbeddings([{ content: query, chunkIndex: 0 } as any])
      return db
        .prepare(
          `SELECT d.file_path, (1 - ce.distance) AS score FROM chunk_embeddings ce
           JOIN chunks c ON ce.chunk_id = c.id JOIN documents d ON c.document_id = d.id
           WHERE ce.embedding MATCH vec_f32(?) AND ce.k = ? ORDER BY ce.distance ASC`,
        )
        .all(new Float32Array(q[0]!.vector), 5) as { file_path: string; score: number }[]
    }
    const cases: [string, RegExp][] = [
      ['how do I fix a flat tyre on my bicycle', /bikes/],
      ['what temperature should the oven be for bread', /cooking/],
      ['when should I water tomato plants', /gardening/],
      ['how much memory does the service give back after unloading the model', /README|BENCHMARKS/],
    ]
    for (const [query, want] of cases) {
      const hits = await search(query)
      console.log(`[native-backend] "${query}" -> ${hits.map((h) => `${h.file_path.split('/').pop()} ${h.score.toFixed(3)}`).join(', ')}`)
      expect(hits[0]!.file_path).toMatch(want)
    }
    await bridge.unload()
    expect(await bridge.isLoaded()).toBe(false)
  }, 120000)
})
