"""The Psych-201 paper's figures, for your own models, from surrogate's tables.

Each function takes tables (as `analyze` writes them) and returns a matplotlib Figure and
the table it draws, or None when the tables hold nothing to draw. Colours are the
Okabe-Ito palette (distinguishable with the common colour-vision deficiencies); every axis
says what it shows and in which unit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..analysis import SESSION, unit_column

# Okabe & Ito (2008): safe for deuteranopia, protanopia and tritanopia.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
COMPONENT_COLOURS = {"total": "#000000", "population_component": "#0072B2", "individual_component": "#D55E00"}
COMPONENT_LABELS = {"total": "total benefit", "population_component": "population component",
                    "individual_component": "individual component"}

Figure = Any


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # Labels, studies and titles are data: drawn as literal text, never parsed as mathtext
    # (a model label with two '$' in it made the report fail).
    plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                         "figure.dpi": 100, "savefig.bbox": "tight", "text.parse_math": False,
                         "text.usetex": False})
    return plt


def model_nll(responses: pd.DataFrame, *, persona: str = "none", by: str = "study") -> pd.DataFrame:
    """Per model: mean NLL per response, averaged over experiments (each experiment's mean
    over its participants' means), with the across-experiment SE."""
    d = responses[(responses["persona"] == persona) & responses["nll"].notna()]
    if d.empty:
        return pd.DataFrame(columns=["model", "mean_nll", "se", "n_experiments"])
    by = unit_column(by)
    per = d.groupby(["model", *dict.fromkeys([by, *SESSION])])["nll"].mean().groupby(["model", by]).mean()
    from scipy import stats

    out = per.groupby("model").agg(mean_nll="mean", sd="std", n_experiments="count").reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n_experiments"])
    # Half-width of the 95% t interval over experiments (0 with one experiment: no interval).
    out["ci95"] = [se * stats.t.ppf(0.975, n - 1) if n > 1 else 0.0 for se, n in zip(out["se"], out["n_experiments"])]
    return out.drop(columns="sd")


def nll_by_size(responses: pd.DataFrame, pairs: list[Any]) -> tuple[Figure, pd.DataFrame] | None:
    """Fig. 2: mean NLL against model size per family, one line per post-training type.
    Models without a known size are drawn as bars instead."""
    plt = _plt()
    table = model_nll(responses)
    if table.empty:
        return None
    meta: dict[str, dict[str, Any]] = {}
    for p in pairs:
        meta.setdefault(p.base, {"family": p.family or "models", "size_b": p.size_b, "type": "base"})
        meta.setdefault(p.post_trained, {"family": p.family or "models", "size_b": p.size_b,
                                         "type": p.post_training or "post-trained"})
    table["family"] = [meta.get(m, {}).get("family", "") for m in table["model"]]
    table["size_b"] = [meta.get(m, {}).get("size_b") for m in table["model"]]
    table["type"] = [meta.get(m, {}).get("type", "") for m in table["model"]]
    sized = table[table["size_b"].notna()]
    if len(sized) >= 2 and sized["size_b"].nunique() >= 2:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        styles = ["-", "--", ":", "-."]
        types = sorted(sized["type"].unique(), key=lambda t: (t != "base", t))
        for fi, (family, g) in enumerate(sized.groupby("family")):
            for ti, t in enumerate(types):
                h = g[g["type"] == t].sort_values("size_b")
                if h.empty:
                    continue
                ax.errorbar(h["size_b"], h["mean_nll"], yerr=h["ci95"].fillna(0), marker="o",
                            color=PALETTE[ti % len(PALETTE)], linestyle=styles[fi % len(styles)], capsize=2,
                            label=f"{family}: {t}" if sized["family"].nunique() > 1 else t)
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sorted(sized["size_b"].unique())))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("model size (billions of parameters, log scale)")
    else:
        fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.45 * len(table)))
        t = table.sort_values("mean_nll")
        colours = [PALETTE[0] if ty in ("", "base") else PALETTE[1] for ty in t["type"]]
        ax.barh(t["model"], t["mean_nll"], xerr=t["ci95"].fillna(0), color=colours, capsize=2)
        ax.invert_yaxis()
        ax.set_xlabel("mean NLL per response (nats; lower predicts people better)")
        ax.set_title("Predicting people, by model (persona off; 95% t interval over experiments)")
        fig.subplots_adjust(left=0.3)
        return fig, table
    ax.set_ylabel("mean NLL per response (nats)")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Predicting people, by model size (persona off)")
    return fig, table


D_LABELS = {"d_paper": "the paper's d (response rows, pooled SD)",
            "cohens_d": "surrogate's per-participant paired d"}


def _d_columns(which: str) -> tuple[str, str, str]:
    return (which, f"{which}_lo", f"{which}_hi") if which == "d_paper" else ("cohens_d", "lo", "hi")


def nll_by_study(responses: pd.DataFrame, *, persona: str = "none") -> tuple[Figure, pd.DataFrame] | None:
    """Per model, each study's NLL per response relative to that study's mean over the models
    (per cent), so studies of very different scale compare; the mean over studies as a diamond."""
    plt = _plt()
    d = responses[(responses["persona"] == persona) & responses["nll"].notna()]
    if d.empty:
        return None
    per = d.groupby(["model", *SESSION])["nll"].mean().groupby(["study", "model"]).mean()
    table = per.rename("nll").reset_index()
    table["relative"] = 100 * (table["nll"] / table.groupby("study")["nll"].transform("mean") - 1)
    models = sorted(table["model"].unique())
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.5 * len(models)))
    rng = np.random.default_rng(0)
    for i, m in enumerate(models):
        g = table[table["model"] == m]
        ax.scatter(g["relative"], i + rng.uniform(-0.15, 0.15, len(g)), s=14, color=PALETTE[0], alpha=0.7,
                   label="a study" if i == 0 else None)
        ax.plot(g["relative"].mean(), i, "D", color=PALETTE[1], markersize=7, label="mean over studies" if i == 0 else None)
    ax.set_yticks(range(len(models)), models)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("NLL per response relative to the study's mean over these models (%; < 0: predicts people better)")
    ax.set_title(f"Predicting people, study by study (persona {persona})")
    ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    fig.tight_layout()
    return fig, table


def misalignment_forest(misalignment: pd.DataFrame, which: str = "d_paper") -> tuple[Figure, pd.DataFrame] | None:
    """Fig. 3: post-training misalignment per (base, post-trained) pair with 95% CIs, and the
    mean per post-training type; generations within a family in a second panel. `which`:
    `d_paper` (the paper's scale, participant-bootstrap CIs; default) or `cohens_d`."""
    plt = _plt()
    value, lo_col, hi_col = _d_columns(which)
    pooled = misalignment[misalignment["level"] == "pooled"].copy()
    if pooled.empty:
        return None
    if len(pooled) == 1:  # one pair: show it per experiment, with the pooled estimate
        return _one_pair_forest(misalignment, pooled.iloc[0], which)
    pooled["post_training"] = pooled["post_training"].fillna("").replace("", "post-trained")
    pooled = pooled.sort_values(["post_training", value])
    types = list(dict.fromkeys(pooled["post_training"]))
    gens = pooled[pooled["generation"].fillna("").astype(str) != ""]
    panels = 2 if gens["family"].nunique() >= 1 and gens["generation"].nunique() >= 2 else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 + 3 * (panels - 1), 0.8 + 0.35 * (len(pooled) + len(types))),
                             squeeze=False)
    ax = axes[0][0]
    y, labels = 0, []
    for ti, t in enumerate(types):
        g = pooled[pooled["post_training"] == t]
        colour = PALETTE[ti % len(PALETTE)]
        for _, r in g.iterrows():
            v, lo, hi = float(r[value]), float(r[lo_col]), float(r[hi_col])
            ax.errorbar(v, y, xerr=[[v - lo], [hi - v]] if np.isfinite(lo) else None, fmt="o", color=colour, capsize=2)
            labels.append(r["pair"])
            y += 1
        ax.plot(g[value].mean(), y, marker="D", color=colour, markersize=7)
        labels.append(f"mean: {t} ({len(g)})")
        y += 1
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"misalignment, {D_LABELS[which]}\n(post-trained − base NLL; > 0: post-training predicts people worse)")
    ax.set_title("Post-training misalignment (95% CI)")
    if panels == 2:
        ax2 = axes[0][1]
        for fi, (family, g) in enumerate(gens.groupby("family")):
            g = g.assign(gen=pd.to_numeric(g["generation"], errors="coerce"))
            g = g.sort_values("gen") if g["gen"].notna().all() else g.sort_values("generation")
            means = g.groupby("generation", sort=False)[value].mean()
            ax2.plot(means.index.astype(str), means.values, marker="o", color=PALETTE[fi % len(PALETTE)],
                     label=family or "models")
        ax2.axhline(0, color="grey", lw=0.8)
        ax2.set_xlabel("generation (within family)")
        ax2.set_ylabel(f"mean misalignment ({'paper' if which == 'd_paper' else 'per-participant'} d)")
        ax2.set_title("Across generations")
        ax2.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig, pooled


def generation_trend(misalignment: pd.DataFrame, trends: pd.DataFrame) -> tuple[Figure, pd.DataFrame] | None:
    """The paper's generation trend: each pair's misalignment (the paper's d, mean over
    experiments, 95% interval) against its generation within its family, the mean per
    generation as a line, and the trend test's slope in the title. None below two generations."""
    plt = _plt()
    pooled = misalignment[(misalignment["level"] == "pooled")
                          & (misalignment["generation"].fillna("").astype(str) != "")
                          & misalignment["d_paper"].notna()].copy()
    if pooled.empty or pooled.groupby("family")["generation"].nunique().max() < 2:
        return None
    pooled["post_training"] = pooled["post_training"].fillna("").replace("", "post-trained")
    families = sorted(pooled["family"].unique())
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.6), squeeze=False, sharey=True)
    markers = dict(zip(sorted(pooled["post_training"].unique()), "osD^v<>p"))
    for ax, family in zip(axes[0], families):
        g = pooled[pooled["family"] == family].assign(gen=lambda f: pd.to_numeric(f["generation"], errors="coerce"))
        order = (sorted(g["generation"].unique(), key=float) if g["gen"].notna().all()
                 else sorted(g["generation"].unique()))
        x = {gen: i for i, gen in enumerate(order)}
        for ti, (t, h) in enumerate(g.groupby("post_training")):
            xs = np.array([x[v] for v in h["generation"]]) + (ti - 0.5 * (len(markers) - 1)) * 0.06
            lo, hi = h["d_paper"] - h["d_paper_lo"], h["d_paper_hi"] - h["d_paper"]
            ax.errorbar(xs, h["d_paper"], yerr=[lo.fillna(0).clip(lower=0), hi.fillna(0).clip(lower=0)],
                        fmt=markers[t], color=PALETTE[ti % len(PALETTE)], capsize=2, alpha=0.8, label=t)
        means = g.groupby("generation")["d_paper"].mean().reindex(order)
        ax.plot(range(len(order)), means.values, color="black", lw=1.2, label="mean per generation")
        ax.set_xticks(range(len(order)), [str(v) for v in order])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(f"{family} generation")
        ax.set_title(family)
    axes[0][0].set_ylabel("misalignment (the paper's d; > 0: post-trained worse)")
    axes[0][-1].legend(frameon=False, fontsize=7)
    row = trends[(trends["covariate"] == "generation") & (trends["d"] == "d_paper")] if not trends.empty else trends
    if not row.empty and row.iloc[0]["status"] == "ok":
        r = row.iloc[0]
        fig.suptitle(f"Generation trend: slope {r['slope']:+.3f} per generation [{r['lo']:+.3f}, {r['hi']:+.3f}], "
                     f"p = {r['p']:.3g} ({int(r['n_pairs'])} pairs)", fontsize=9)
    elif not row.empty:
        fig.suptitle(f"Generation trend: {row.iloc[0]['status']}", fontsize=9)
    else:
        fig.suptitle("Generation trend: not tested (it needs at least three pairs with a generation)", fontsize=9)
    fig.tight_layout()
    return fig, pooled


def _one_pair_forest(misalignment: pd.DataFrame, pooled: pd.Series, which: str) -> tuple[Figure, pd.DataFrame]:
    plt = _plt()
    value, lo_col, hi_col = _d_columns(which)
    rows = misalignment[(misalignment["pair"] == pooled["pair"]) & (misalignment["level"] == "experiment")]
    table = pd.concat([rows, pooled.to_frame().T], ignore_index=True)
    fig, ax = plt.subplots(figsize=(6, max(2.2, 0.8 + 0.4 * len(table))))
    for i, r in table.iterrows():
        is_pooled = r["level"] == "pooled"
        v, lo, hi = float(r[value]), float(r[lo_col]), float(r[hi_col])
        if not np.isfinite(v):
            continue
        ax.errorbar(v, i, xerr=[[v - lo], [hi - v]] if np.isfinite(lo) else None, fmt="D" if is_pooled else "o",
                    color=PALETTE[1] if is_pooled else PALETTE[0], markersize=7 if is_pooled else 5, capsize=2)
    labels = [f"mean over {int(len(rows))} experiments" if lvl == "pooled" else f"{e} (n={int(n)})"
              for e, n, lvl in zip(table["experiment"], table["n"], table["level"])]
    ax.set_yticks(range(len(table)), labels)
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel(f"misalignment, {D_LABELS[which]}\n(post-trained − base NLL; > 0: post-training predicts people worse)")
    ax.set_title(f"Post-training misalignment: {pooled['pair']} (95% CI)")
    fig.tight_layout()
    return fig, table


def misalignment_heatmap(misalignment: pd.DataFrame, which: str = "d_paper") -> tuple[Figure, pd.DataFrame] | None:
    """Fig. 4: misalignment by domain, pairs × domains, with the domain averages."""
    plt = _plt()
    dom = misalignment[misalignment["level"] == "domain"]
    if dom.empty or dom[which].isna().all():
        return None
    grid = dom.pivot_table(index="pair", columns="experiment", values=which)
    grid.loc["domain average"] = grid.mean()
    lim = float(np.nanmax(np.abs(grid.values))) or 1.0
    fig, ax = plt.subplots(figsize=(max(5.0, 3.0 + 0.8 * grid.shape[1]), max(3.0, 1.6 + 0.45 * grid.shape[0])))
    im = ax.imshow(grid.values, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index)
    ax.axhline(grid.shape[0] - 1.5, color="black", lw=1)
    for (i, j), v in np.ndenumerate(grid.values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.6 * lim else "black")
    fig.colorbar(im, ax=ax, label=f"{'paper' if which == 'd_paper' else 'per-participant'} d\n(> 0: post-trained worse)",
                 shrink=0.9)
    ax.set_title(f"Misalignment by domain ({D_LABELS[which]})", pad=10)
    fig.tight_layout()
    return fig, grid.reset_index()


def metadata_benefit_plot(benefit: pd.DataFrame) -> tuple[Figure, pd.DataFrame] | None:
    """Fig. 5: the meta-data benefit per model (the paper's d, and surrogate's paired d with
    its 95% CI), averaged over experiments."""
    plt = _plt()
    pooled = benefit[benefit["experiment"] == "pooled"].sort_values("d_paper")
    if pooled.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 1.6 + 0.4 * len(pooled)))
    y = np.arange(len(pooled))
    ax.errorbar(pooled["cohens_d"], y + 0.12, xerr=[pooled["cohens_d"] - pooled["lo"], pooled["hi"] - pooled["cohens_d"]],
                fmt="o", color=PALETTE[0], capsize=2, label="per-participant d (95% CI)")
    ax.plot(pooled["d_paper"], y - 0.12, "s", color=PALETTE[1], label="paper's d (response rows)")
    ax.set_yticks(y, pooled["model"])
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("meta-data benefit, Cohen's d (no persona − persona NLL; > 0: persona helps)")
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=2)
    ax.set_title("Meta-data benefit per model")
    fig.tight_layout()
    return fig, pooled


def persona_forest(effects: pd.DataFrame, model: str, control: str | None = None, *,
                   matched: str | None = None, label: str | None = None) -> tuple[Figure, pd.DataFrame] | None:
    """The persona decomposition per experiment (total / population / individual, 95% CIs),
    and the pooled estimate with its prediction interval (nats per response). `label`: one
    decomposition's rows only (several can share a model, strategy and control, as the default
    job's arms do)."""
    plt = _plt()
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    t = effects[effects["model"] == model]
    if label is not None and "label" in t:
        t = t[t["label"] == label]
    if control is not None and "control" in t:
        t = t[t["control"] == control]
    if matched is not None and "matched" in t:
        t = t[t["matched"] == matched]
    t = t[~t["experiment"].isin(["pooled_fixed", "pooled_relative", "pooled_per_token"])]
    if t.empty:
        return None
    rows = list(t[t["experiment"] != "pooled"]["experiment"]) + (["pooled"] if (t["experiment"] == "pooled").any() else [])
    t = t.set_index("experiment").loc[rows].reset_index()
    fig, ax = plt.subplots(figsize=(6, 1.8 + 0.45 * len(t)))
    for k, comp in enumerate(COMPONENT_COLOURS):
        off = (k - 1) * 0.22
        for i, r in t.iterrows():
            v, lo, hi = r[comp], r[f"{comp}_lo"], r[f"{comp}_hi"]
            if not np.isfinite(v):
                continue
            pooled = r["experiment"] == "pooled"
            ax.errorbar(v, i + off, xerr=[[v - lo], [hi - v]] if np.isfinite(lo) else None,
                        fmt="D" if pooled else "o", markersize=6 if pooled else 4,
                        color=COMPONENT_COLOURS[comp], capsize=2,
                        label=COMPONENT_LABELS[comp] if i == 0 else None)
            pi_lo, pi_hi = r.get(f"{comp}_pi_lo", math.nan), r.get(f"{comp}_pi_hi", math.nan)
            if pooled and comp == "individual_component" and np.isfinite(pi_lo):
                ax.plot([pi_lo, pi_hi], [i + off + 0.1] * 2, color=COMPONENT_COLOURS[comp], lw=3, alpha=0.35,
                        label="prediction interval (individual)")
    k = int((t["experiment"] != "pooled").sum())
    names = [f"pooled over {k} experiment{'s' if k != 1 else ''}" if e == "pooled" else e for e in t["experiment"]]
    ax.set_yticks(range(len(t)), [f"{e} (n={n})" for e, n in zip(names, t["n_participants"])])
    ax.invert_yaxis()
    ax.axvline(0, color="grey", lw=0.8)
    # readable ticks however small the effects: few of them, plain numbers (text.parse_math is
    # off for figures, so matplotlib's offset and math-text notations would print as source)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: "0" if x == 0 else f"{x:.2g}"))
    ax.set_xlabel("persona benefit (nats per response; > 0: the persona lowers NLL)")
    ax.set_title(f"Persona decomposition: {label or model}" + (f" ({matched})" if matched and matched != "interview"
                                                                  else ""))
    ax.legend(frameon=False, fontsize=7, loc="upper center", ncol=3,
              bbox_to_anchor=(0.5, -0.75 / (0.45 * len(t) + 0.8)))  # below the axis label: 0.75 inch, in axes units
    fig.tight_layout()
    return fig, t


def choice_rates(population: pd.DataFrame) -> tuple[Figure, pd.DataFrame] | None:
    """Closed-set choices: predicted against observed choice rate of every option."""
    plt = _plt()
    if population.empty:
        return None
    rows = []
    for _, r in population.iterrows():
        for o, obs, pred in zip(str(r["options"]).split("|"), str(r["observed"]).split("|"),
                                str(r["predicted"]).split("|")):
            rows.append({"model": r["model"], "persona": r["persona"], "experiment": r["experiment"],
                         "option": o, "observed": float(obs), "predicted": float(pred)})
    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for k, ((m, p), g) in enumerate(table.groupby(["model", "persona"])):
        ax.scatter(g["observed"], g["predicted"], s=18, color=PALETTE[k % len(PALETTE)], label=f"{m} ({p})",
                   alpha=0.8)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlim(0, 1)
    return _finish(fig, ax, table, "observed choice rate (share of participants' choices)",
                   "predicted choice rate (model probability)", "Closed-set choices: predicted vs observed", 7)


def _finish(fig, ax, table: pd.DataFrame, xlabel: str, ylabel: str, title: str, legend_size: int
            ) -> tuple[Figure, pd.DataFrame]:
    """A share-valued plot's axis labels, title and legend (y from 0 to 1)."""
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=legend_size)
    fig.tight_layout()
    return fig, table


def lora_recovery(reports: list[dict[str, Any]]) -> tuple[Figure, pd.DataFrame] | None:
    """Held-out NLL before and after each LoRA adapter (and of its reference), per study."""
    plt = _plt()
    rows = [{"adapter": r["adapter"], **h} for r in reports for h in r["heldout"]]
    if not rows:
        return None
    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(6, 1.0 + 0.5 * len(table)))
    y = np.arange(len(table))
    labels = [f"{a.rstrip('/').split('/')[-1]}: {s}" for a, s in zip(table["adapter"], table["study"])]
    ax.plot(table["before"], y, "o", color=PALETTE[1], label="before (post-trained)")
    ax.plot(table["after"], y, "o", color=PALETTE[2], label="after LoRA")
    if table["reference"].notna().any():
        ax.plot(table["reference"], y, "|", color=PALETTE[0], markersize=12, label="reference (base)")
    for i, r in table.iterrows():
        ax.annotate("", xy=(r["after"], i), xytext=(r["before"], i),
                    arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
        # The fraction means something only where post-training opened a gap to the reference.
        if r.get("recovery") is not None and np.isfinite(r["recovery"]) and r["before"] > r["reference"]:
            right = np.nanmax([r["before"], r["after"], r["reference"]])
            ax.text(right, i, f"  recovers {r['recovery']:.0%}", fontsize=7, va="center")
    ax.margins(x=0.2)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("held-out NLL per response (nats)")
    ax.set_title("LoRA toward human behaviour", pad=8)
    ax.legend(frameon=False, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    fig.tight_layout()
    return fig, table


# --- custom studies: agents against people ----------------------------------------------

def choices_per_trial(people: pd.DataFrame, agents: pd.DataFrame) -> tuple[Figure, pd.DataFrame] | None:
    """Share choosing the first option at each trial, people and each agent population."""
    plt = _plt()
    if people is None or agents is None or people.empty or agents.empty:
        return None
    frames = [people.assign(group="people"), agents.assign(group=agents["agent"])]
    both = pd.concat(frames, ignore_index=True)
    table = both.assign(first=(both["position"] == 0).astype(float)).groupby(["group", "trial"])["first"].mean()
    table = table.rename("share_first").reset_index()
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for k, (group, g) in enumerate(table.groupby("group", sort=False)):
        ax.plot(g["trial"], g["share_first"], color=PALETTE[k % len(PALETTE)], lw=1.6 if group == "people" else 1.1,
                label=group)
    return _finish(fig, ax, table, "trial", "share choosing the first option", "Choices trial by trial", 8)


def index_strips(people: pd.DataFrame, agents: pd.DataFrame) -> tuple[Figure, pd.DataFrame] | None:
    """Each behaviour index per participant, people against each agent population."""
    from ..analysis import index_columns

    plt = _plt()
    indices = [c for c in index_columns(people) if c in agents and c != "index"]
    if not indices:
        return None
    both = pd.concat([people.assign(group="people"), agents.assign(group=agents["agent"])], ignore_index=True)
    groups = list(dict.fromkeys(both["group"]))
    fig, axes = plt.subplots(1, len(indices), figsize=(2.2 * len(indices) + 1, 3.2), squeeze=False)
    rng = np.random.default_rng(0)
    for ax, name in zip(axes[0], indices):
        for k, g in enumerate(groups):
            v = both.loc[both["group"] == g, name].dropna().to_numpy()
            ax.scatter(k + rng.uniform(-0.15, 0.15, len(v)), v, s=8, alpha=0.5, color=PALETTE[k % len(PALETTE)])
            if len(v):
                ax.plot(k, v.mean(), "D", color="black", markersize=6)
        ax.set_xticks(range(len(groups)), groups, rotation=30, ha="right", fontsize=7)
        ax.set_title(name.replace("_", " "), fontsize=9)
    fig.tight_layout()
    return fig, both[["group", "participant", *indices]]


def recovery_plot(people: pd.DataFrame, agents: pd.DataFrame) -> tuple[Figure, pd.DataFrame] | None:
    """People: true against fitted parameters; agents: a persona trait against a fitted one."""
    plt = _plt()
    pairs = [(f"true:{c[4:]}", c, "people", people) for c in people.columns
             if c.startswith("fit:") and f"true:{c[4:]}" in people]
    traits = [c for c in agents.columns if c.startswith("trait:") and pd.api.types.is_numeric_dtype(agents[c])]
    fits = [c for c in agents.columns if c.startswith("fit:") and c != "fit:nll"]
    pairs += [(t, f, str(a), g) for a, g in agents.groupby("agent") for t in traits[:2] for f in fits]
    if not pairs:
        return None
    n = len(pairs)
    cols = min(4, n)
    rows_n = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(2.8 * cols, 2.5 * rows_n), squeeze=False)
    records = []
    for ax, (x, y, group, frame) in zip(axes.flat, pairs):
        xs, ys = frame[x].to_numpy(dtype=float), frame[y].to_numpy(dtype=float)
        ax.scatter(xs, ys, s=10, alpha=0.6, color=PALETTE[0] if group == "people" else PALETTE[1])
        ax.set_yscale("log")
        if x.startswith("true:"):
            ax.set_xscale("log")
        ok = np.isfinite(xs) & np.isfinite(ys) & (ys > 0)
        r = np.corrcoef(np.log(xs[ok]) if x.startswith("true:") else xs[ok], np.log(ys[ok]))[0, 1] if ok.sum() > 3 else math.nan
        ax.set_title(f"{group}: r = {r:+.2f}", fontsize=8)
        ax.set_xlabel(x.replace("true:", "true ").replace("trait:", ""), fontsize=8)
        ax.set_ylabel(y.replace("fit:", "fitted "), fontsize=8)
        records.append({"group": group, "x": x, "y": y, "r": r})
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    return fig, pd.DataFrame(records)


def individual_plot(comparisons: list) -> tuple[Figure, pd.DataFrame] | None:
    """How much closer each agent is to its own person than to the others, per population."""
    plt = _plt()
    rows = [{"agent": c.agent, "on": m.on, "closer": m.closer, "p": m.p, "pairs": m.pairs}
            for c in comparisons for m in c.individual]
    if not rows:
        return None
    table = pd.DataFrame(rows)
    fig, ax = plt.subplots(figsize=(5.5, 0.9 + 0.45 * len(table)))
    y = np.arange(len(table))
    ax.barh(y, table["closer"], color=[PALETTE[0] if o == "indices" else PALETTE[2] for o in table["on"]])
    ax.set_yticks(y, [f"{a} ({o})" for a, o in zip(table["agent"], table["on"])])
    for i, r in table.iterrows():
        ax.text(r["closer"], i, f"  p = {r['p']:.3g}", va="center", fontsize=7)
    ax.axvline(0, color="grey", lw=0.8)
    ax.invert_yaxis()
    ax.set_xlabel("own person closer than the others by (standardised distance; > 0: individual tracking)")
    ax.set_title("Is each agent closest to its own person?")
    fig.tight_layout()
    return fig, table
