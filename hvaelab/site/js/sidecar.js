// Scores, p-values and verdict of the ONNX graph's outputs from its JSON sidecar, in the browser.
//
// A plain ES module (no dependencies): `import { scoreWithSidecar } from "./sidecar.js"`. It
// ports hvaelab/onnx_export.py `score_with_sidecar`, step for step and in float64:
//
// * every LLR>k column of the `llr` output (sidecar outputs.llr.columns);
// * with a fitted second stage (sidecar second_stage): second_stage.py `features` (log1p of
//   max(0, [-rec>0..-rec>L-1, kl1..klL])), the standardisation, and `Mixture.log_density`
//   (per component: Cholesky factor, triangular solve, Mahalanobis distance, 2 sum log diag;
//   then a log-sum-exp shifted by the largest term); the score is -log q;
// * mean_path.py `pvalue` / pvalues.py `_pvalue_sorted`: (1 + #{r >= v - tol}) / (n + 1);
// * scores.py `tolerant_verdict` / pvalues.py `verdict`: Bonferroni over the sidecar's verdict
//   scores, the decisive one the smallest p-value (first on ties), OOD iff min p < fpr / K.
//
// Outputs are row-major typed arrays (Float32Array from ONNX Runtime Web, or anything indexable;
// an ORT tensor's `.data` is taken): `rec` (N, L+1), `kl` (N, L), `llr` (N, L).
// tests/e2e/test_site_model.py checks the numbers against the Python.

/** mean_path.py SECOND_STAGE: the second stage's score name. */
export const SECOND_STAGE = "second-stage";
/** pvalues.py TAILS. */
export const TAILS = Object.freeze(["upper", "lower", "two-sided"]);

function values(output, name) {
  const data = output && output.data !== undefined && !ArrayBuffer.isView(output) ? output.data : output;
  if (!data || typeof data.length !== "number") throw new Error(`outputs.${name}: missing`);
  return Float64Array.from(data);
}

function checkFinite(arr, name) {
  for (let k = 0; k < arr.length; k++) {
    if (!Number.isFinite(arr[k])) {
      throw new Error(`${name} contains non-finite values (NaN or inf); check the inputs and the model`);
    }
  }
  return arr;
}

/** The number of sorted values < v (`side="left"`) or <= v (`side="right"`): np.searchsorted. */
export function searchSorted(sorted, v, side = "left") {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (side === "left" ? sorted[mid] < v : sorted[mid] <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * pvalues.py `_pvalue_sorted` for one value against a sorted Float64Array reference:
 * upper (1 + #{r >= v}) / (n + 1), lower (1 + #{r <= v}) / (n + 1), two-sided
 * min(1, 2 min(upper, lower)).
 */
export function empiricalPvalue(sorted, v, tail = "upper") {
  if (!TAILS.includes(tail)) throw new Error(`tail must be one of ${TAILS}, got ${tail}`);
  const n = sorted.length;
  const up = (1.0 + (n - searchSorted(sorted, v, "left"))) / (n + 1.0);
  if (tail === "upper") return up;
  const lo = (1.0 + searchSorted(sorted, v, "right")) / (n + 1.0);
  if (tail === "lower") return lo;
  return Math.min(1.0, 2.0 * Math.min(up, lo));
}

/** mean_path.py `pvalue`: the upper-tail p-value of v with ties up to `tol` (higher = more OOD). */
export function pvalue(sorted, v, tol) {
  return empiricalPvalue(sorted, v - tol, "upper");
}

/** A reference column as a sorted Float64Array (the sidecar's is sorted; sorted again as numpy). */
export function sortedReference(list, name) {
  if (!Array.isArray(list) || list.length === 0) throw new Error(`reference ${name}: empty`);
  return checkFinite(Float64Array.from(list), `reference ${name}`).sort();
}

/**
 * second_stage.py `features` of one input: log1p(max(0, [-rec>0..-rec>L-1, kl1..klL])), 2L
 * values. `rec` is the input's L+1 values, `kl` its L values.
 */
export function features(rec, kl, L) {
  const f = new Float64Array(2 * L);
  for (let k = 0; k < L; k++) f[k] = -rec[k];
  for (let i = 0; i < L; i++) f[L + i] = kl[i];
  checkFinite(f, "statistics");
  for (let j = 0; j < f.length; j++) f[j] = Math.log1p(Math.max(f[j], 0.0));
  return f;
}

/** The lower Cholesky factor of a symmetric positive-definite matrix (array of rows). */
export function cholesky(a) {
  const n = a.length;
  const l = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i][j];
      for (let k = 0; k < j; k++) s -= l[i][k] * l[j][k];
      if (i === j) {
        if (!(s > 0)) throw new Error("covariance is not positive definite");
        l[i][i] = Math.sqrt(s);
      } else {
        l[i][j] = s / l[j][j];
      }
    }
  }
  return l;
}

/** Solve L y = b for a lower-triangular L (forward substitution). */
export function solveLower(l, b) {
  const n = b.length;
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= l[i][k] * y[k];
    y[i] = s / l[i][i];
  }
  return y;
}

/**
 * second_stage.py `Mixture` from the sidecar's weights (K), means (K, F), covariances (K, F, F):
 * `logDensity(z)` = log sum_j w_j N(z; mu_j, Sigma_j) of one standardised feature vector.
 * The Cholesky factors and log-determinants are computed once.
 */
export function mixture(weights, means, covariances) {
  const comps = weights.map((w, j) => {
    const chol = cholesky(covariances[j]);
    let logdet = 0.0;
    for (let i = 0; i < chol.length; i++) logdet += Math.log(chol[i][i]);
    return { logw: Math.log(w), mu: Float64Array.from(means[j]), chol, logdet: 2.0 * logdet };
  });
  return {
    /** (K) log w_j + log N(z; mu_j, Sigma_j): `component_log_density`. */
    componentLogDensity(z) {
      const f = z.length;
      return comps.map(({ logw, mu, chol, logdet }) => {
        const d = new Float64Array(f);
        for (let i = 0; i < f; i++) d[i] = z[i] - mu[i];
        const sol = solveLower(chol, d);
        let maha = 0.0;
        for (let i = 0; i < f; i++) maha += sol[i] * sol[i];
        return logw - 0.5 * (f * Math.log(2 * Math.PI) + logdet + maha);
      });
    },
    /** log q(z): a log-sum-exp shifted by the largest component. */
    logDensity(z) {
      const c = this.componentLogDensity(z);
      const m = Math.max(...c);
      let s = 0.0;
      for (const v of c) s += Math.exp(v - m);
      return m + Math.log(s);
    },
  };
}

/**
 * onnx_export.py `score_with_sidecar`: `outputs` {rec, kl, llr} (row-major typed arrays or ORT
 * tensors) of N inputs and the parsed sidecar -> {scores, pValues: {name: Float64Array(N)},
 * minP: Float64Array(N), decisive: [name] (N), decisiveIndex: Int32Array(N) (into
 * `voted`), threshold, isOod: [bool] (N), voted, fpr, n}. `fpr` defaults to the sidecar's.
 */
export function scoreWithSidecar(outputs, side, fpr = null) {
  const L = side.checkpoint.n_layers;
  fpr = fpr === null || fpr === undefined ? side.verdict.fpr : fpr;
  if (!(fpr > 0 && fpr < 1)) throw new Error(`fpr must be in (0, 1), got ${fpr}`);
  const tol = side.pvalues.tie_tolerance;
  const llr = values(outputs.llr, "llr");
  if (llr.length % L) throw new Error(`outputs.llr: ${llr.length} values are not N x ${L}`);
  const n = llr.length / L;
  const scores = {};
  side.outputs.llr.columns.forEach((name, j) => {
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) col[i] = llr[i * L + j];
    scores[name] = col;
  });
  const stage = side.second_stage;
  if (stage !== null && stage !== undefined) {
    const rec = values(outputs.rec, "rec");
    const kl = values(outputs.kl, "kl");
    if (rec.length !== n * (L + 1) || kl.length !== n * L) {
      throw new Error(`outputs.rec / outputs.kl: not ${n} x ${L + 1} / ${n} x ${L}`);
    }
    const q = mixture(stage.weights, stage.means, stage.covariances);
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const f = features(rec.subarray(i * (L + 1), (i + 1) * (L + 1)), kl.subarray(i * L, (i + 1) * L), L);
      for (let j = 0; j < f.length; j++) f[j] = (f[j] - stage.feature_mean[j]) / stage.feature_std[j];
      col[i] = -q.logDensity(f);
    }
    scores[SECOND_STAGE] = col;
  }
  const ref = {};
  const pValues = {};
  for (const [name, col] of Object.entries(scores)) {
    ref[name] = sortedReference(side.reference.scores[name], name);
    checkFinite(col, `scores ${name}`);
    pValues[name] = col.map((v) => pvalue(ref[name], v, tol));
  }
  // the verdict (scores.py tolerant_verdict -> pvalues.py verdict): upper tail of v - tol
  const voted = side.verdict.scores;
  const threshold = fpr / voted.length;
  const minP = new Float64Array(n);
  const decisiveIndex = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestP = Infinity;
    voted.forEach((name, j) => {
      const p = empiricalPvalue(ref[name], scores[name][i] - tol, "upper");
      if (p < bestP) [best, bestP] = [j, p]; // argmin: the first on ties
    });
    minP[i] = bestP;
    decisiveIndex[i] = best;
  }
  return {
    scores,
    pValues,
    minP,
    decisive: Array.from(decisiveIndex, (j) => voted[j]),
    decisiveIndex,
    threshold,
    isOod: Array.from(minP, (p) => p < threshold),
    voted,
    fpr,
    n,
  };
}
