// The detector in the visitor's browser: the exported ONNX graph in ONNX Runtime Web (CPU).
//
// A plain ES module: `const model = await loadModel(new URL("./", location.href))`, then
// `const {outputs, report} = await model.score(image)` for a 28x28 uint8 image (Uint8Array(784),
// row-major, 0 = black). It
//
// * fetches `model.onnx` and its sidecar `model.onnx.json` (written by `hvaelab export-onnx`)
//   from `baseUrl`, once; everything after that runs from memory;
// * runs ONNX Runtime Web vendored in ../vendor/onnxruntime-web (scripts/fetch_onnxruntime_web.py):
//   the WebAssembly backend on one thread, the wasm file from that folder (no CDN, no worker);
// * binarizes like hvaelab.data.binarize_fixed (preprocess.js, bit for bit; the sidecar's
//   preprocessing is checked to be that one) and scores with sidecar.js.
//
// tests/e2e/test_site_model.py compares the results with onnxruntime + Python.

import * as ort from "../vendor/onnxruntime-web/ort.wasm.bundle.min.mjs";
import { binarizeFixed, GRID, toProbabilities } from "./preprocess.js";
import { scoreWithSidecar } from "./sidecar.js";

export { ort };

/** The graph's input and outputs (onnx_export.py INPUT_NAME, OUTPUT_NAMES). */
export const INPUT_NAME = "x";
export const OUTPUT_NAMES = Object.freeze(["rec", "kl", "llr", "reconstructions"]);

// what preprocess.js implements (onnx_export.py BINARIZATION): the sidecar must say the same
const BINARIZATION = {
  python: "hvaelab.data.binarize_fixed(hvaelab.data.to_tensor(images), seed)",
  constants: { G: "0x9E3779B97F4A7C15", M1: "0xBF58476D1CE4E5B9", M2: "0x94D049BB133111EB" },
};

/** Throw unless the sidecar is one this page can score with (format, input, binarization). */
export function checkSidecar(side) {
  if (side.format !== "hvaelab onnx sidecar" || side.format_version !== 1) {
    throw new Error(`not an hvaelab onnx sidecar of format 1: ${side.format} ${side.format_version}`);
  }
  const inp = side.input;
  const shape = JSON.stringify(inp.shape);
  if (inp.name !== INPUT_NAME || inp.dtype !== "float32" || shape !== JSON.stringify(["N", 1, GRID, GRID])) {
    throw new Error(`the graph's input is ${inp.name} ${inp.dtype} ${shape}, not x float32 (N, 1, 28, 28)`);
  }
  const pre = side.preprocessing;
  const same =
    pre.python === BINARIZATION.python &&
    Object.entries(BINARIZATION.constants).every(([k, v]) => pre.constants[k] === v) &&
    Number.isSafeInteger(pre.seed);
  if (!same) throw new Error("the sidecar's binarization is not preprocess.js's binarizeFixed");
  return side;
}

async function fetchOk(url, what) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${what}: ${url} answered ${res.status}`);
  return res;
}

/**
 * Load the model from `baseUrl` (a URL or string; `model.onnx`, `model.onnx.json` relative to
 * it) -> {session, sidecar, timings, score(image, fpr?), binarize(image)}. `timings`: seconds
 * to fetch both files (`fetch`) and to create the session (`session`: the first one also
 * fetches and instantiates the wasm runtime).
 */
export async function loadModel(baseUrl, { onnx = "model.onnx", sidecar = "model.onnx.json" } = {}) {
  const t0 = performance.now();
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = {
    wasm: new URL("../vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm", import.meta.url).href,
  };
  const base = new URL(baseUrl, document.baseURI);
  const [bytes, side] = await Promise.all([
    fetchOk(new URL(onnx, base), "the graph").then((r) => r.arrayBuffer()),
    fetchOk(new URL(sidecar, base), "the sidecar").then((r) => r.json()),
  ]);
  checkSidecar(side);
  const t1 = performance.now();
  const session = await ort.InferenceSession.create(new Uint8Array(bytes), {
    executionProviders: ["wasm"],
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: "all",
  });
  const t2 = performance.now();
  const timings = { fetch: (t1 - t0) / 1000, session: (t2 - t1) / 1000 };
  const seed = side.preprocessing.seed;

  /** The graph's input for one image: Float32Array(784) of 0/1 bits. */
  function binarize(image) {
    if (image.length !== GRID * GRID) throw new Error(`image: expected ${GRID * GRID} pixels, got ${image.length}`);
    return binarizeFixed(toProbabilities(image), seed);
  }

  /** Score one image -> {input, outputs: {name: Float32Array}, report} (sidecar.js report, N = 1). */
  async function score(image, fpr = null) {
    const input = binarize(image);
    const feeds = { [INPUT_NAME]: new ort.Tensor("float32", input, [1, 1, GRID, GRID]) };
    const result = await session.run(feeds, OUTPUT_NAMES);
    const outputs = {};
    for (const name of OUTPUT_NAMES) outputs[name] = result[name].data;
    return { input, outputs, report: scoreWithSidecar(outputs, side, fpr) };
  }

  return { session, sidecar: side, timings, score, binarize };
}
