// The daemon's curated models and how a daemon model name maps to what EmbeddingService loads.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { coded } = require('./errors.js')
const { installingPackageRoot } = require('./keep-alive.js')

// The daemon's curated models (its config/curated-models.json). `gpu:` models are the ones the daemon runs on
// its Python backend; `requiresPrefix` is its model registry's word on E5 prefixes. The `cpu:xenova-*` entries
// are ONNX exports: the Python contract loads the safetensors model they were exported from; the ONNX contract
// (onnx-service.js) reads the export itself.
const CURATED = [
  { id: 'gpu:bge-m3', hubId: 'BAAI/bge-m3', dimensions: 1024, requiresPrefix: false },
  { id: 'gpu:multilingual-e5-large', hubId: 'intfloat/multilingual-e5-large', dimensions: 1024, requiresPrefix: true },
  {
    id: 'gpu:paraphrase-multilingual-minilm',
    hubId: 'sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2',
    dimensions: 384,
    requiresPrefix: false,
  },
  {
    id: 'cpu:xenova-multilingual-e5-small',
    hubId: 'intfloat/multilingual-e5-small',
    onnxId: 'Xenova/multilingual-e5-small',
    dimensions: 384,
    requiresPrefix: true,
  },
  {
    id: 'cpu:xenova-multilingual-e5-large',
    hubId: 'intfloat/multilingual-e5-large',
    onnxId: 'Xenova/multilingual-e5-large',
    dimensions: 1024,
    requiresPrefix: true,
  },
]

/**
 * The hub id (or folder) a daemon model name loads: a curated `gpu:`/`cpu:` id or an ONNX export's id maps to
 * its safetensors model; a bare name such as 'all-MiniLM-L6-v2' is a sentence-transformers model, as
 * `SentenceTransformer(name)` reads it; anything else is used as given.
 */
function resolveModel(name) {
  const curated = CURATED.find((m) => m.id === name || m.onnxId === name || m.hubId === name)
  if (curated) return { source: curated.hubId, curated }
  if (/^(gpu|cpu|ollama):/.test(name)) {
    throw coded('ERR_MODEL_NOT_FOUND', `Model ${name} is not one of the daemon's curated models this backend runs (${CURATED.map((m) => m.id).join(', ')})`)
  }
  if (!name.includes('/') && !name.startsWith('.') && !path.isAbsolute(name)) {
    return { source: `sentence-transformers/${name}`, curated: null }
  }
  return { source: name, curated: null }
}

// The daemon's catalog entries of its cpu: models at d01bb52, as its ONNX service reads them (its
// ModelCompatibilityEvaluator), for when the daemon's own curated-models.json cannot be found. Neither has
// `requirements.prefixes`, so its ONNX pipeline sends texts without the E5 prefixes; an index it built holds
// such vectors, and the same texts keep them comparable.
const CPU_MODELS = [
  {
    id: 'cpu:xenova-multilingual-e5-small',
    displayName: 'E5-Small ONNX (Most Popular)',
    huggingfaceId: 'Xenova/multilingual-e5-small',
    baseModel: 'intfloat/multilingual-e5-small',
    dimensions: 384,
    modelSizeMB: 120,
    quantization: 'int8',
    contextWindow: 512,
    languageCount: 78,
    capabilities: { dense: true, requiresPrefix: true, requiresNormalization: true, prefixFormat: 'passage' },
  },
  {
    id: 'cpu:xenova-multilingual-e5-large',
    displayName: 'E5-Large ONNX (High Accuracy)',
    huggingfaceId: 'Xenova/multilingual-e5-large',
    baseModel: 'intfloat/multilingual-e5-large',
    dimensions: 1024,
    modelSizeMB: 550,
    quantization: 'int8',
    contextWindow: 512,
    languageCount: 78,
    capabilities: { dense: true, requiresPrefix: true, requiresNormalization: true, prefixFormat: 'passage' },
  },
]

/** The daemon's curated-models.json (built into dist/config, or its source), read once; null if not found. */
let catalog
function daemonCatalog() {
  if (catalog !== undefined) return catalog
  catalog = null
  const root = installingPackageRoot()
  for (const file of root ? ['dist/config/curated-models.json', 'src/config/curated-models.json'] : []) {
    try {
      const json = JSON.parse(fs.readFileSync(path.join(root, file), 'utf8'))
      if (Array.isArray(json?.cpuModels?.models)) {
        catalog = json
        break
      }
    } catch {}
  }
  return catalog
}

/**
 * The catalog entry of a `cpu:` model: the daemon's own (so its `requirements.prefixes`, if it ever sets them,
 * apply as its ONNX service applies them), else the copy above; undefined for other ids.
 */
function cpuModelEntry(modelId) {
  const own = daemonCatalog()?.cpuModels.models.find((m) => m?.id === modelId && typeof m.huggingfaceId === 'string')
  if (own) return { ...own, languageCount: Object.keys(own.languagePerformance ?? {}).length }
  return CPU_MODELS.find((m) => m.id === modelId)
}

module.exports = { CURATED, resolveModel, cpuModelEntry }
