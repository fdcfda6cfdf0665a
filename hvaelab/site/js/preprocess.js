// The preprocessing of drawn strokes and the fixed binarization, in the browser, bit for bit.
//
// A plain ES module (no dependencies, no build step): `import { strokesToImage } from
// "./preprocess.js"`. It mirrors, step for step and dtype for dtype,
//
// * hvaelab/data/strokes.py: strokes on a 280x280 canvas -> float32 raster (`rasterize`) ->
//   28x28 uint8 image (`toModelImage`: 10x10 block means in float64, summed in numpy's order,
//   then `rint(255 v)` with halves to even);
// * hvaelab/data/binarize.py: `to_tensor` (`toProbabilities`) and `binarize_fixed`
//   (`binarizeFixed`, a content-keyed SplitMix64 hash, hvaelab/noise.py's `splitmix64`).
//
// Images are flat, row-major typed arrays: a raster is a Float32Array(280 * 280), a model image
// a Uint8Array(28 * 28). tests/e2e/test_site_preprocess.py checks the bytes against Python.

/** Canvas side in logical px (strokes.py CANVAS_PX). */
export const CANVAS_PX = 280;
/** Model image side (strokes.py GRID). */
export const GRID = 28;
/** Brush shapes (strokes.py BRUSH_SHAPES). */
export const BRUSH_SHAPES = Object.freeze(["round", "square"]);
/** Points per stroke (strokes.py MAX_POINTS). */
export const MAX_POINTS = 20000;
/** Strokes per drawing (strokes.py MAX_STROKES). */
export const MAX_STROKES = 2000;
const COORD_LIMIT = 1e6; // strokes.py _COORD_LIMIT
const STROKE_KEYS = ["points", "width", "ink", "shape"];
const fround = Math.fround;

// ---------------------------------------------------------------------------------------------
// Validation (strokes.py Stroke.__post_init__, Stroke.from_dict, _points, _check_base)

function isNumber(v) {
  return typeof v === "number";
}

function finite(v, field) {
  if (!isNumber(v)) throw new Error(`Stroke ${field}: must be a number, got ${String(v)}.`);
  if (!Number.isFinite(v)) throw new Error(`Stroke ${field}: must be finite, got ${v}.`);
  return v;
}

function checkPoints(value) {
  if (!Array.isArray(value)) {
    throw new Error("Stroke points: must be a list of [x, y] pairs.");
  }
  if (value.length === 0) {
    throw new Error("Stroke points: a stroke needs at least one point, got none.");
  }
  if (value.length > MAX_POINTS) {
    throw new Error(`Stroke points: at most ${MAX_POINTS} points per stroke, got ${value.length}.`);
  }
  return value.map((p, k) => {
    if (!Array.isArray(p) || p.length !== 2) {
      throw new Error(`Stroke points[${k}]: must be an [x, y] pair, got ${JSON.stringify(p)}.`);
    }
    const x = finite(p[0], `points[${k}]`);
    const y = finite(p[1], `points[${k}]`);
    if (Math.abs(x) > COORD_LIMIT || Math.abs(y) > COORD_LIMIT) {
      throw new Error(
        `Stroke points[${k}]: coordinates must be within +-${COORD_LIMIT} canvas px, ` +
          `got [${x}, ${y}].`,
      );
    }
    return [x, y];
  });
}

/**
 * A checked stroke `{points, width, ink, shape}` from a stroke object as the canvas sends it
 * (width 20, ink 1, shape "round" when left out). Mirrors strokes.py `Stroke.from_dict`.
 */
export function checkStroke(d) {
  if (d === null || typeof d !== "object" || Array.isArray(d)) {
    throw new Error('Stroke: expected an object {"points": [[x, y], ...], "width", "ink", "shape"}.');
  }
  const unknown = Object.keys(d)
    .filter((k) => !STROKE_KEYS.includes(k))
    .sort();
  if (unknown.length) {
    throw new Error(
      `Stroke: unknown field(s) ${JSON.stringify(unknown)}; ` +
        `the fields are ${JSON.stringify(STROKE_KEYS)}.`,
    );
  }
  if (!("points" in d)) throw new Error('Stroke points: missing (expected "points": [[x, y], ...]).');
  const points = checkPoints(d.points);
  const width = finite("width" in d ? d.width : 20.0, "width");
  if (!(width > 0 && width <= CANVAS_PX)) {
    throw new Error(`Stroke width: must be in (0, ${CANVAS_PX}] canvas px, got ${width}.`);
  }
  const ink = finite("ink" in d ? d.ink : 1.0, "ink");
  if (!(ink >= 0 && ink <= 1)) throw new Error(`Stroke ink: must be in [0, 1], got ${ink}.`);
  const shape = "shape" in d ? d.shape : "round";
  if (!BRUSH_SHAPES.includes(shape)) {
    throw new Error(
      `Stroke shape: must be one of ${JSON.stringify(BRUSH_SHAPES)}, got ${JSON.stringify(shape)}.`,
    );
  }
  return { points, width, ink, shape };
}

function checkStrokes(strokes) {
  if (!Array.isArray(strokes)) throw new Error("strokes: expected a list of strokes.");
  if (strokes.length > MAX_STROKES) {
    throw new Error(`strokes: at most ${MAX_STROKES} strokes, got ${strokes.length}.`);
  }
  return strokes.map((s, k) => {
    try {
      return checkStroke(s);
    } catch (e) {
      throw new Error(`strokes[${k}]: ${e.message}`);
    }
  });
}

/**
 * The start raster, Float32Array(size * size): black, or `base` upsampled nearest-neighbour.
 * `base`: a Uint8Array / Uint8ClampedArray(784) (divided by 255 in float32) or a Float32Array /
 * Float64Array(784) in [0, 1] (cast to float32), row-major. Mirrors strokes.py `_check_base`.
 */
function checkLength(base) {
  if (base.length !== GRID * GRID) {
    throw new Error(`base: expected ${GRID * GRID} pixels (${GRID}x${GRID}), got ${base.length}.`);
  }
}

function startRaster(base, size) {
  const raster = new Float32Array(size * size);
  if (base === null || base === undefined) return raster;
  if (size % GRID) throw new Error(`size must be a multiple of ${GRID} to upsample a base, got ${size}.`);
  let img;
  if (base instanceof Uint8Array || base instanceof Uint8ClampedArray) {
    checkLength(base);
    img = new Float32Array(GRID * GRID);
    for (let k = 0; k < img.length; k++) img[k] = fround(base[k] / 255); // float32 / float32(255)
  } else if (base instanceof Float32Array || base instanceof Float64Array) {
    checkLength(base);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of base) {
      if (!Number.isFinite(v)) throw new Error("base: contains NaN or infinite values.");
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    if (lo < 0 || hi > 1) {
      throw new Error(`base: float images must be in [0, 1], got values in [${lo}, ${hi}].`);
    }
    img = Float32Array.from(base); // astype(float32)
  } else {
    throw new Error(
      "base: must be a Uint8Array (0..255) or a Float32Array/Float64Array in [0, 1], 784 pixels.",
    );
  }
  const k = size / GRID;
  for (let i = 0; i < size; i++) {
    const row = Math.floor(i / k) * GRID;
    for (let j = 0; j < size; j++) raster[i * size + j] = img[row + Math.floor(j / k)];
  }
  return raster;
}

// ---------------------------------------------------------------------------------------------
// Painting (float64 geometry, as numpy computes it; no fused multiply-add in JavaScript either)

/** strokes.py `_span`: pixel indices [start, stop] (clipped) whose centres may lie in [lo, hi]. */
function span(lo, hi, size) {
  return [Math.max(0, Math.ceil(lo - 0.5) - 1), Math.min(size - 1, Math.floor(hi - 0.5) + 1)];
}

/** strokes.py `_round_cover` for one pixel centre (x, y): distance to the segment <= h. */
function roundCover(x, y, ax, ay, bx, by, r2) {
  const dx = bx - ax;
  const dy = by - ay;
  const L2 = dx * dx + dy * dy;
  let t;
  if (L2 === 0) {
    t = 0.0;
  } else {
    t = ((x - ax) * dx + (y - ay) * dy) / L2;
    t = t < 0 ? 0.0 : t > 1 ? 1.0 : t; // np.clip
  }
  const ex = x - (ax + t * dx);
  const ey = y - (ay + t * dy);
  return ex * ex + ey * ey <= r2;
}

/** strokes.py `_interval`: bounds [lo, hi] of the t with |c - (a + t d)| <= h. */
function interval(c, a, d, h) {
  if (d === 0) {
    return Math.abs(c - a) <= h ? [-Infinity, Infinity] : [Infinity, -Infinity];
  }
  const u = c - a;
  const t1 = (u - h) / d;
  const t2 = (u + h) / d;
  return d > 0 ? [t1, t2] : [t2, t1];
}

/** strokes.py `_square_cover` for one pixel centre (x, y). */
function squareCover(x, y, ax, ay, bx, by, h) {
  const [lox, hix] = interval(x, ax, bx - ax, h);
  const [loy, hiy] = interval(y, ay, by - ay, h);
  const lo = Math.max(Math.max(lox, loy), 0.0);
  const hi = Math.min(Math.min(hix, hiy), 1.0);
  return lo <= hi;
}

/** strokes.py `_paint`: set every pixel the stroke covers to its ink (float32), opaquely. */
function paint(raster, size, stroke) {
  const h = stroke.width / 2.0;
  const pts = stroke.points;
  const ink = fround(stroke.ink);
  const px = pts.map((p) => p[0]);
  const py = pts.map((p) => p[1]);
  const [j0, j1] = span(Math.min(...px) - h, Math.max(...px) + h, size);
  const [i0, i1] = span(Math.min(...py) - h, Math.max(...py) + h, size);
  if (j0 > j1 || i0 > i1) return; // entirely off the canvas
  const round = stroke.shape === "round";
  const r2 = h * h;
  const nseg = pts.length > 1 ? pts.length - 1 : 1;
  for (let s = 0; s < nseg; s++) {
    const [ax, ay] = pts[s];
    const [bx, by] = pts.length > 1 ? pts[s + 1] : pts[s];
    const [sj0, sj1] = span(Math.min(ax, bx) - h, Math.max(ax, bx) + h, size);
    const [si0, si1] = span(Math.min(ay, by) - h, Math.max(ay, by) + h, size);
    if (sj0 > sj1 || si0 > si1) continue;
    for (let i = si0; i <= si1; i++) {
      const y = i + 0.5;
      for (let j = sj0; j <= sj1; j++) {
        const x = j + 0.5;
        // One ink per stroke: painting each covered pixel at once equals the Python's mask.
        if (round ? roundCover(x, y, ax, ay, bx, by, r2) : squareCover(x, y, ax, ay, bx, by, h)) {
          raster[i * size + j] = ink;
        }
      }
    }
  }
}

/**
 * Paint `strokes` (objects {points, width, ink, shape}, see `checkStroke`) in order on a
 * float32 raster in [0, 1] over `base` (optional, see `startRaster`); returns a
 * Float32Array(size * size), row-major. Mirrors strokes.py `rasterize`.
 */
export function rasterize(strokes, base = null, size = CANVAS_PX) {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`size must be a positive int, got ${size}.`);
  const checked = checkStrokes(strokes);
  const raster = startRaster(base, size);
  for (const s of checked) paint(raster, size, s);
  return raster;
}

// ---------------------------------------------------------------------------------------------
// Block means and bytes

/**
 * numpy's pairwise sum of `n` float64 values a[off + k * stride] (numpy's `pairwise_sum`, the
 * inner loop of `np.add.reduce` over a contiguous axis): below 8 values one by one from -0.0;
 * up to 128 eight accumulators combined as ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)), then the rest;
 * beyond that split in two at a multiple of 8.
 */
function pairwiseSum(a, off, n, stride) {
  if (n < 8) {
    let res = -0.0;
    for (let k = 0; k < n; k++) res += a[off + k * stride];
    return res;
  }
  if (n <= 128) {
    const r = new Float64Array(8);
    for (let q = 0; q < 8; q++) r[q] = a[off + q * stride];
    let k = 8;
    for (; k < n - (n % 8); k += 8) {
      for (let q = 0; q < 8; q++) r[q] += a[off + (k + q) * stride];
    }
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; k < n; k++) res += a[off + k * stride];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, off, n2, stride) + pairwiseSum(a, off + n2 * stride, n - n2, stride);
}

/**
 * The float64 mean of each (side/grid)^2 block of a square raster, Float64Array(grid * grid):
 * strokes.py `to_model_image`'s `raster.astype(np.float64).reshape(grid, k, grid, k)
 * .mean(axis=(1, 3))`, in numpy's order: for each block, 0.0 plus, row after row, the pairwise
 * sum of the row's k values; then divided by k * k.
 */
export function blockMeans(raster, grid = GRID) {
  const side = Math.round(Math.sqrt(raster.length));
  if (side * side !== raster.length || side === 0 || side % grid) {
    throw new Error(
      `raster must be square with a side that is a multiple of ${grid}, ` +
        `got ${raster.length} pixels.`,
    );
  }
  const k = side / grid;
  const f = Float64Array.from(raster);
  const out = new Float64Array(grid * grid);
  for (let I = 0; I < grid; I++) {
    for (let J = 0; J < grid; J++) {
      let s = 0.0;
      for (let i = 0; i < k; i++) s += pairwiseSum(f, (I * k + i) * side + J * k, k, 1);
      out[I * grid + J] = s / (k * k);
    }
  }
  return out;
}

/** numpy's `rint`: round to the nearest integer, halves to the even one (not Math.round). */
export function rint(x) {
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** strokes.py `_to_uint8`: grey levels in [0, 1] -> Uint8Array of clip(rint(255 v), 0, 255). */
export function toUint8(values) {
  const out = new Uint8Array(values.length);
  for (let k = 0; k < values.length; k++) {
    const v = rint(255.0 * values[k]);
    out[k] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return out;
}

/** strokes.py `to_model_image`: raster -> Uint8Array(grid * grid) of its block means' bytes. */
export function toModelImage(raster, grid = GRID) {
  return toUint8(blockMeans(raster, grid));
}

/** strokes.py `strokes_to_image`: the Uint8Array(784) model image of strokes over `base`. */
export function strokesToImage(strokes, base = null) {
  return toModelImage(rasterize(strokes, base, CANVAS_PX), GRID);
}

// ---------------------------------------------------------------------------------------------
// Binarization (BigInt for numpy's wrapping uint64 arithmetic)

const M64 = (1n << 64n) - 1n;
const GOLDEN = 0x9e3779b97f4a7c15n;

/** noise.py `splitmix64`: the SplitMix64 finalizer on one uint64 (a BigInt), wrapping. */
export function splitmix64(z) {
  z = (z + GOLDEN) & M64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

const pixKeys = new Map(); // n -> BigUint64Array of splitmix64(k * GOLDEN)

function pixelKeys(n) {
  let keys = pixKeys.get(n);
  if (!keys) {
    keys = new BigUint64Array(n);
    for (let k = 0; k < n; k++) keys[k] = splitmix64((BigInt(k) * GOLDEN) & M64);
    pixKeys.set(n, keys);
  }
  return keys;
}

/**
 * binarize.py `to_tensor` for one grey image: uint8 pixels -> Float32Array of v / 255 (in
 * float32).
 */
export function toProbabilities(image) {
  const out = new Float32Array(image.length);
  for (let k = 0; k < image.length; k++) {
    const v = image[k];
    if (!Number.isInteger(v) || v < 0 || v > 255) {
      throw new Error(`image: pixels must be integers in 0..255, got ${v} at ${k}.`);
    }
    out[k] = fround(v / 255);
  }
  return out;
}

/**
 * binarize.py `binarize_fixed` for one example: its float32 pixel probabilities (e.g.
 * `toProbabilities(image)`, 784 of them, row-major) -> Float32Array of 0/1 bits. Each pixel's
 * uniform draw is a hash of the example's float32 bits, the pixel's position and `seed` (an
 * integer or BigInt, taken modulo 2^64 like Python's `seed % 2**64`).
 */
export function binarizeFixed(pixels, seed = 0) {
  let seed64;
  if (typeof seed === "bigint") seed64 = BigInt.asUintN(64, seed);
  else if (Number.isSafeInteger(seed)) seed64 = BigInt.asUintN(64, BigInt(seed));
  else throw new Error(`seed: must be an integer (Number or BigInt), got ${String(seed)}.`);
  const p = Float32Array.from(pixels);
  for (let k = 0; k < p.length; k++) {
    if (!(p[k] >= 0 && p[k] <= 1)) {
      throw new Error("binarization needs values in [0, 1] (NaN is not allowed); use toProbabilities");
    }
    p[k] += 0; // -0.0 -> 0.0
  }
  const out = new Float32Array(p.length);
  if (p.length === 0) return out;
  const bits = new Uint32Array(p.buffer);
  const pix = pixelKeys(p.length);
  const seedKey = splitmix64(seed64);
  let content = 0n;
  for (let k = 0; k < p.length; k++) content = (content + splitmix64(BigInt(bits[k]) ^ pix[k])) & M64;
  const key = splitmix64(content ^ seedKey);
  const scale = 2 ** -24;
  for (let k = 0; k < p.length; k++) {
    const r = splitmix64(key ^ pix[k]);
    const u = Number(r >> 40n) * scale; // a 24-bit integer times 2^-24: exact in float32
    out[k] = u < p[k] ? 1 : 0;
  }
  return out;
}
