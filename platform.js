// The napi-rs platform name of this process ("linux-x64-gnu", "darwin-arm64", "win32-x64-msvc", ...): the
// suffix of the native binary's file name and of the prebuilt package that carries it.
'use strict'

function isMusl() {
  if (process.platform !== 'linux') return false
  try {
    return !process.report.getReport().header.glibcVersionRuntime
  } catch {
    return false
  }
}

function platformName() {
  const { platform, arch } = process
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

module.exports = { platformName }
