// embedding-service/daemon: folder-mcp's two embedding backends in process, one file per daemon contract.
// - python-service.js: its `PythonEmbeddingService` (the `gpu:` models), also `NativeEmbeddingBackend`;
// - onnx-service.js: its `ONNXEmbeddingService` (the `cpu:` models, int8 from the ONNX file it downloaded);
// - keep-alive.js and queries.js: the keep-alive and the search detection both share.
'use strict'

const { NativeEmbeddingBackend } = require('./python-service.js')
const { ONNXEmbeddingService } = require('./onnx-service.js')
const { CURATED, resolveModel } = require('./curated.js')

module.exports = {
  NativeEmbeddingBackend,
  PythonEmbeddingService: NativeEmbeddingBackend,
  ONNXEmbeddingService,
  CURATED_MODELS: CURATED,
  resolveModel,
}
