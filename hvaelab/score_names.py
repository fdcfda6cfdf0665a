"""Score names: the one owner of what every OOD score is called, how it is computed from a
score table's bounds, how it is labelled, and which way it points.

Sign convention, used everywhere in hvaelab: a HIGHER score means MORE out-of-distribution.
Bounds (ELBO, L>k, L<l) are log-likelihoods in nats; as scores they enter negated (``-L``, which
is bits/dim up to the factor ``1 / (D ln 2)``). Likelihood ratios enter as they are.

============  =======================  ==========================================  =========
family        name (S = 1 / S > 1)     value from the table's columns              paper
============  =======================  ==========================================  =========
``ELBO``      ``-ELBO`` / ``-ELBO_S``  ``-elbo`` / ``-elbo_iw``                    eqs. 1, 9
``L>k``       ``-L>k`` / ``-L>k_S``    ``-L>k`` / ``-L>k_iw``                      eq. 5
``LLR>k``     ``LLR>k``                ``elbo - L>k``                              eq. 6
              ``LLR_S>k iw-elbo``      ``elbo_iw - L>k``                           eq. 10
              ``LLR_S>k iw-both``      ``elbo_iw - L>k_iw`` (the authors' code)
``L<l``       ``-L<l``                 ``-L<l``                                    app. E
``LLR>k<l``   ``LLR>k<l``              ``L<l - L>k``                               eq. 21
``select-k``  ``LLR select-k`` /       per example, the k whose LLR>k is the most  sec. 5
              ``LLR_S select-k``       unusual for the reference (needs one)
``IC``        ``IC`` / ``IC_S``        ``-elbo - png_bits ln 2`` (input            Serrà et
              (input complexity)       complexity, :mod:`hvaelab.complexity`)      al. 2020
second stage  ``second-stage``         ``second-stage``: -log density of the       beyond
                                       HVAE's statistics                           the paper
                                       (:mod:`hvaelab.second_stage`)
============  =======================  ==========================================  =========

Score tables are stored per dataset and S under a :class:`TableKey` (``"DATASET@S<n>"``).
Paper: https://arxiv.org/abs/2102.08248
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

IW_FORMS = ("iw-elbo", "iw-both")


class Family(StrEnum):
    """The kinds of OOD score (the explorer's "score" menu)."""

    ELBO = "ELBO"
    GT = "L>k"
    LLR = "LLR>k"
    LT = "L<l"
    LLR_LT = "LLR>k<l"
    SELECT_K = "select-k"
    IC = "IC"
    SECOND_STAGE = "second-stage"


# the second stage's column in a score table, which is also its score's name
SECOND_STAGE_COLUMN = Family.SECOND_STAGE.value
BOUND_FAMILIES = (Family.ELBO, Family.GT, Family.LT)
FAMILY_LABELS = {
    Family.ELBO: "ELBO (log-likelihood bound, k = 0)",
    Family.GT: "L>k (bound, lowest k latents from the prior)",
    Family.LLR: "LLR>k = ELBO − L>k (likelihood ratio)",
    Family.LT: "L<l (bound, latents below l from the posterior)",
    Family.LLR_LT: "LLR>k<l = L<l − L>k (generalised ratio)",
    Family.SELECT_K: "per-example selection of k (sec. 5)",
    Family.IC: "IC = −ELBO − PNG length (input complexity, Serrà et al. 2020)",
    Family.SECOND_STAGE: "second stage over the HVAE's statistics (beyond the paper)",
}
# Families with neither k nor l.
PLAIN_FAMILIES = (Family.ELBO, Family.SELECT_K, Family.IC, Family.SECOND_STAGE)

# The only parser of score names in hvaelab.
_NAME = re.compile(
    r"^(?P<neg>-?)(?P<base>ELBO|L|LLR)(?P<s1>_S)?(?:>(?P<k>\d+))?(?:<(?P<l>\d+))?(?P<s2>_S)?"
    r"(?: (?P<rest>iw-elbo|iw-both|select-k))?$"
)

_SLUG = re.compile(
    r"^(elbo|selectk|secondstage|ic|llr|lt|l)(\d*)(?:lt(\d+))?(_s)?(?:-(iw-elbo|iw-both))?$"
)


@dataclass(frozen=True)
class ScoreName:
    """One OOD score: its family, k and l, whether it is importance-weighted (S > 1) and, for
    importance-weighted ratios, the form (``iw-elbo``: eq. 10, ``iw-both``: the authors' code).

    ``str(name)`` is the name used as a key everywhere (score dicts, tables, CSV columns);
    :meth:`parse` is its inverse.
    """

    family: Family
    k: int = 0
    l: int = 0
    iw: bool = False
    form: str = ""

    def __post_init__(self) -> None:
        fam = self.family
        needs_k = fam in (Family.GT, Family.LLR, Family.LLR_LT)  # PLAIN_FAMILIES need neither
        needs_l = fam in (Family.LT, Family.LLR_LT)
        if needs_k != (self.k > 0) or needs_l != (self.l > 0):
            raise ValueError(f"{fam}: k={self.k}, l={self.l} do not fit this family")
        if fam in (Family.LT, Family.LLR_LT, Family.SECOND_STAGE) and self.iw:
            raise ValueError(f"{fam} has no importance-weighted form")
        if (fam == Family.LLR and self.iw) != bool(self.form):
            raise ValueError("importance-weighted LLR>k needs form 'iw-elbo' or 'iw-both'")
        if self.form and self.form not in IW_FORMS:
            raise ValueError(f"iw form must be one of {IW_FORMS}, got {self.form!r}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def elbo(cls, iw: bool = False) -> ScoreName:
        return cls(Family.ELBO, iw=iw)

    @classmethod
    def gt(cls, k: int, iw: bool = False) -> ScoreName:
        """``-L>k`` (``k = 0`` is the ELBO)."""
        return cls(Family.GT, k=k, iw=iw) if k else cls.elbo(iw)

    @classmethod
    def llr(cls, k: int, iw: bool = False, form: str = "iw-both") -> ScoreName:
        return cls(Family.LLR, k=k, iw=iw, form=form if iw else "")

    @classmethod
    def lt(cls, l: int) -> ScoreName:
        return cls(Family.LT, l=l)

    @classmethod
    def llr_lt(cls, k: int, l: int) -> ScoreName:
        return cls(Family.LLR_LT, k=k, l=l)

    @classmethod
    def select_k(cls, iw: bool = False) -> ScoreName:
        return cls(Family.SELECT_K, iw=iw)

    @classmethod
    def ic(cls, iw: bool = False) -> ScoreName:
        """Input complexity (Serrà et al. 2020): ``-ELBO`` (``-ELBO_S``) minus the PNG length."""
        return cls(Family.IC, iw=iw)

    @classmethod
    def second_stage(cls) -> ScoreName:
        return cls(Family.SECOND_STAGE)

    @classmethod
    def of_family(
        cls, family: str, k: int = 0, l: int = 0, n_samples: int = 1, iw_form: str = "iw-both"
    ) -> ScoreName:
        """The score of ``family`` at k (and l) for a table with ``n_samples`` samples; bounds
        and LLR>k use their importance-weighted form when S > 1."""
        try:
            fam = Family(family)
        except ValueError:
            raise ValueError(
                f"unknown score family {family!r}; choose one of {[f.value for f in Family]}"
            ) from None
        iw = n_samples > 1
        if fam == Family.ELBO:
            return cls.elbo(iw)
        if fam == Family.GT:
            return cls.gt(k, iw)
        if fam == Family.LLR:
            return cls.llr(k, iw, iw_form)
        if fam == Family.LT:
            return cls.lt(l)
        if fam == Family.LLR_LT:
            return cls.llr_lt(k, l)
        if fam == Family.IC:
            return cls.ic(iw)
        if fam == Family.SECOND_STAGE:
            return cls.second_stage()
        return cls.select_k(iw)

    @classmethod
    def parse(cls, text: str | ScoreName) -> ScoreName:
        """``"LLR_S>1 iw-both"`` -> ``ScoreName(Family.LLR, k=1, iw=True, form="iw-both")``."""
        if isinstance(text, ScoreName):
            return text
        plain = {"IC": cls.ic(), "IC_S": cls.ic(True), "second-stage": cls.second_stage()}
        if str(text).strip() in plain and str(text) == str(text).strip():
            return plain[str(text)]
        m = _NAME.match(str(text).strip())
        if m is None:
            raise ValueError(f"not a score name: {text!r} (e.g. -ELBO, LLR>1, LLR_S>2 iw-both)")
        g = m.groupdict()
        base, rest = g["base"], g["rest"] or ""
        k, l, iw = int(g["k"] or 0), int(g["l"] or 0), bool(g["s1"] or g["s2"])
        try:
            if rest == "select-k":
                name = cls.select_k(iw)
            elif base == "LLR":
                name = cls.llr_lt(k, l) if l else cls.llr(k, iw, rest or "iw-both")
            elif base == "ELBO":
                name = cls.elbo(iw)
            else:
                name = cls.lt(l) if l else cls(Family.GT, k=k, iw=iw)
        except ValueError:
            name = None
        if name is None or str(name) != str(text).strip():  # only the canonical spelling
            raise ValueError(
                f"not a score name: {text!r} (bounds are written negated, e.g. -L>1 or -ELBO_S; "
                "ratios as they are, e.g. LLR>1, LLR_S>1 iw-elbo, LLR>2<1, LLR select-k)"
            )
        return name

    # ------------------------------------------------------------------ formatting
    def __str__(self) -> str:
        s = "_S" if self.iw else ""
        fam = self.family
        if fam == Family.ELBO:
            return f"-ELBO{s}"
        if fam == Family.GT:
            return f"-L>{self.k}{s}"
        if fam == Family.LLR:
            return f"LLR_S>{self.k} {self.form}" if self.iw else f"LLR>{self.k}"
        if fam == Family.LT:
            return f"-L<{self.l}"
        if fam == Family.LLR_LT:
            return f"LLR>{self.k}<{self.l}"
        if fam == Family.IC:
            return f"IC{s}"
        if fam == Family.SECOND_STAGE:
            return "second-stage"
        return f"LLR{s} select-k"

    @property
    def is_bound(self) -> bool:
        """A negated likelihood bound (as opposed to a ratio)."""
        return self.family in BOUND_FAMILIES

    @property
    def sign(self) -> int:
        """-1 for bounds (entered negated), +1 for ratios: score = sign * quantity in nats."""
        return -1 if self.is_bound else 1

    @property
    def per_dim(self) -> bool:
        """Shown in bits/dim: the bounds and input complexity (a bound minus a code length)."""
        return self.is_bound or self.family == Family.IC

    @property
    def unit(self) -> str:
        """The unit scores are shown in: bits/dim for bounds and IC, nats for the others."""
        return "bits/dim" if self.per_dim else "nats"

    @property
    def tail(self) -> str:
        """Tail of its empirical p-value: likelihood ratios LLR>k are upper-tail tests (OOD data
        makes them large); bounds and generalised ratios are two-sided (OOD data can score too
        high as well as too low)."""
        upper = (Family.LLR, Family.SELECT_K, Family.SECOND_STAGE)
        return "upper" if self.family in upper else "two-sided"

    @property
    def quantity(self) -> str:
        """What is measured, without the sign: ``ELBO``, ``L>1``, ``LLR>1``."""
        return str(self).removeprefix("-")

    @property
    def slug(self) -> str:
        """Short lower-case form for metric keys (training history): ``elbo``, ``llr1``, ``l2_s``,
        ``lt1``, ``llr2lt1``, ``llr1_s-iw-both``; :meth:`from_slug` is its inverse."""
        fam, s = self.family, "_s" if self.iw else ""
        base = {
            Family.ELBO: "elbo",
            Family.GT: f"l{self.k}",
            Family.LLR: f"llr{self.k}",
            Family.LT: f"lt{self.l}",
            Family.LLR_LT: f"llr{self.k}lt{self.l}",
            Family.SELECT_K: "selectk",
            Family.IC: "ic",
            Family.SECOND_STAGE: "secondstage",
        }[fam]
        return base + s + (f"-{self.form}" if self.form else "")

    @classmethod
    def from_slug(cls, slug: str) -> ScoreName:
        m = _SLUG.match(slug)
        if m is None:
            raise ValueError(f"not a score slug: {slug!r} (e.g. elbo, llr1)")
        base, n, l, s, form = m.groups()
        iw = bool(s)
        if base == "elbo" and not n:
            return cls.elbo(iw)
        if base == "selectk" and not n:
            return cls.select_k(iw)
        if base == "ic" and not n:
            return cls.ic(iw)
        if base == "secondstage" and not n and not iw:
            return cls.second_stage()
        if base == "llr" and n:
            return cls.llr_lt(int(n), int(l)) if l else cls.llr(int(n), iw, form or "iw-both")
        if base == "lt" and n:
            return cls.lt(int(n))
        if base == "l" and n:
            return cls.gt(int(n), iw)
        raise ValueError(f"not a score slug: {slug!r} (e.g. elbo, llr1)")

    def label(self, html_: bool = False) -> str:
        """Paper notation: ``LLR_S>1 iw-both`` -> ``LLR_S^{>1} (iw-both)``.

        Bounds are written as the bound (the ELBO as ``L>0``; the axis says the sign). With
        ``html_`` the result uses <sup>/<sub> and entities (plotly text and HTML tables).
        """
        fam = self.family
        if fam == Family.SECOND_STAGE:
            return "second stage"
        if fam == Family.IC:
            return "IC" + (("<sub>S</sub>" if html_ else "_S") if self.iw else "")
        base = "LLR" if fam in (Family.LLR, Family.LLR_LT, Family.SELECT_K) else "L"
        sup = ""
        if fam in (Family.ELBO, Family.GT, Family.LLR, Family.LLR_LT):
            sup += f">{self.k}"
        if fam in (Family.LT, Family.LLR_LT):
            sup += f"<{self.l}"
        if fam == Family.SELECT_K:
            return "LLR" + (("<sub>S</sub>" if html_ else "_S") if self.iw else "") + " select-k"
        tail = f" ({self.form})" if self.form else ""
        if not html_:
            return base + ("_S" if self.iw else "") + sup + tail
        out = ("ℒ" if base == "L" else "LLR") + ("<sub>S</sub>" if self.iw else "")
        out += f"<sup>{html.escape(sup)}</sup>" if sup else ""
        return out + tail

    def axis_title(self) -> str:
        minus = "−" if self.is_bound else ""
        return f"{minus}{self.label(html_=True)} in {self.unit} (higher = more OOD)"

    def to_display(self, values: np.ndarray | float, n_dims: int) -> np.ndarray:
        """Scores in display units: negated bounds and IC in bits/dim, the others unchanged."""
        v = np.asarray(values, dtype=np.float64)
        return v / (n_dims * math.log(2)) if self.per_dim else v

    # ------------------------------------------------------------------ values
    def values(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The score (higher = more OOD) from a score table's columns of bounds in nats."""
        c, iw = columns, "_iw" if self.iw else ""
        fam, k, l = self.family, self.k, self.l
        if fam == Family.ELBO:
            return -c["elbo" + iw]
        if fam == Family.GT:
            return -c[f"L>{k}" + iw]
        if fam == Family.LLR:
            if not self.iw:
                return c["elbo"] - c[f"L>{k}"]
            return c["elbo_iw"] - c[f"L>{k}_iw" if self.form == "iw-both" else f"L>{k}"]
        if fam == Family.LT:
            return -c[f"L<{l}"]
        if fam == Family.LLR_LT:
            return c[f"L<{l}"] - c[f"L>{k}"]
        if fam == Family.IC:  # S(x) = -log2 p(x) - L(x), in nats
            return -c["elbo" + iw] - c["png_bits"] * math.log(2)
        if fam == Family.SECOND_STAGE:
            return c["second-stage"]
        raise ValueError(f"{self} needs a reference table: see hvaelab.pvalues.select_k_scores")


def table_scores(
    n_layers: int,
    iw: bool,
    lts: Iterable[int] = (),
    ic: bool = False,
    second_stage: bool = False,
) -> list[ScoreName]:
    """Every score a table with ``n_layers`` layers has, in the order tables and figures list
    them: bounds and ratios, their importance-weighted forms when ``iw``, the L<l family, then
    input complexity (``ic``: the table has PNG lengths) and the second stage (``second_stage``:
    the table has its score)."""
    L = range(1, n_layers + 1)
    names = [ScoreName.elbo(), *(ScoreName.gt(k) for k in L), *(ScoreName.llr(k) for k in L)]
    if iw:
        names += [ScoreName.elbo(True), *(ScoreName.gt(k, True) for k in L)]
        for k in L:
            names += [ScoreName.llr(k, True, form) for form in IW_FORMS]
    lts = sorted(lts)
    names += [ScoreName.lt(l) for l in lts]
    names += [ScoreName.llr_lt(k, l) for k in L for l in lts]
    if ic:
        names += [ScoreName.ic()] + ([ScoreName.ic(True)] if iw else [])
    if second_stage:
        names.append(ScoreName.second_stage())
    return names


def llr_names(n_layers: int, n_samples: int = 1, iw_form: str = "iw-both") -> list[str]:
    """Names of the LLR>k scores (k = 1..L) for a table with S samples (the verdict's scores)."""
    if iw_form not in IW_FORMS:
        raise ValueError(f"iw_form must be one of {IW_FORMS}, got {iw_form!r}")
    return [str(ScoreName.llr(k, n_samples > 1, iw_form)) for k in range(1, n_layers + 1)]


@dataclass(frozen=True)
class TableKey:
    """Where a score table is stored: ``"DATASET@S<n>"`` (dataset name, number of samples)."""

    dataset: str
    n_samples: int

    def __str__(self) -> str:
        return f"{self.dataset}@S{self.n_samples}"

    @classmethod
    def parse(cls, key: str) -> TableKey:
        """``"fashionmnist@S4"`` -> ``TableKey("fashionmnist", 4)``."""
        name, _, s = str(key).rpartition("@S")
        if not name or not s.isdigit():
            raise ValueError(f"score table key {key!r} is not of the form DATASET@S<n>")
        return cls(name, int(s))
