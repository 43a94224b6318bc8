import numpy as np
import pandas as pd
import pytest

from surrogate.analysis import ModelPair, choice_prediction, post_training_misalignment, read_categories, read_pairs


def _two_models(d_by_exp: dict[str, float], n=150, seed=0):
    from surrogate.testing.calibration import simulate_two_models

    return simulate_two_models(d_by_exp, n=n, seed=seed)


def test_misalignment_recovers_planted_d_and_domains(tmp_path):
    frame = _two_models({"a": 0.5, "b": 0.5, "c": -0.2, "d": 0.0}, n=400)
    cats = tmp_path / "categories.csv"
    cats.write_text("experiment,dataset,Risky Choice,Memory\na,x,1,0\nb,x,1,0\nc,x,0,1\nd,x,0,1\n")
    result = post_training_misalignment(frame, [ModelPair(base="base", post_trained="chat", family="fam")],
                                        categories=read_categories(cats))
    pm = result.pairs[0]
    for exp, d in {"a": 0.5, "b": 0.5, "c": -0.2, "d": 0.0}.items():
        est = pm.per_experiment[exp]
        assert abs(est.value - d) < 0.2 and est.lo < est.value < est.hi
    assert pm.mean.value == pytest.approx(np.mean([e.value for e in pm.per_experiment.values()]))
    assert pm.by_domain["Risky Choice"].value > pm.by_domain["Memory"].value
    table = result.to_frame()
    assert set(table["level"]) == {"experiment", "pooled", "domain"}
    assert {"d_paper", "post_training", "family"} <= set(table.columns)


def test_the_paired_d_and_its_interval_equal_a_hand_computation():
    """Cohen's d of per-participant means (SDs averaged), its delta-method SE for paired data
    (Algina & Keselman: 2(1 - r)/n + d^2 (1 + r^2)/(4n)) and a normal interval; coverage of a
    planted d is measured by bench/calibration.py (section misalignment)."""
    from scipy import stats

    frame = _two_models({"a": 0.3}, n=40, seed=5)
    est = post_training_misalignment(frame, [ModelPair(base="base", post_trained="chat")], n_boot=0).pairs[0] \
        .per_experiment["a"]
    wide = frame.pivot_table(index="participant", columns="model", values="nll")
    post, base = wide["chat"].to_numpy(), wide["base"].to_numpy()
    n = len(post)
    d = (post.mean() - base.mean()) / np.sqrt((post.var(ddof=1) + base.var(ddof=1)) / 2)
    r = np.corrcoef(post, base)[0, 1]
    se = np.sqrt(2 * (1 - r) / n + d * d * (1 + r * r) / (4 * n))
    z = stats.norm.ppf(0.975)
    assert est.value == pytest.approx(d, rel=1e-12) and est.se == pytest.approx(se, rel=1e-12)
    assert (est.lo, est.hi) == (pytest.approx(d - z * se, rel=1e-12), pytest.approx(d + z * se, rel=1e-12))
    assert est.p == pytest.approx(2 * stats.norm.sf(abs(d / se)), rel=1e-9)


def test_pairs_file_errors_are_clear(tmp_path):
    good = tmp_path / "pairs.toml"
    good.write_text('[[pairs]]\nbase = "b"\npost_trained = "c"\ngeneration = "2025"\n')
    assert read_pairs(good)[0].generation == "2025"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[pairs]]\nbase = "b"\n')
    with pytest.raises(ValueError, match="pair 1.*post_trained"):
        read_pairs(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[[pairs]\n")
    with pytest.raises(ValueError, match="broken.toml"):
        read_pairs(broken)


def _choices(n=60, trials=40, informative=True, seed=0):
    """Participants with individual choice propensities; the model predicts them exactly
    (informative) or predicts the population average for everyone."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        p_a = rng.uniform(0.1, 0.9)
        predicted = p_a if informative else 0.5
        for t in range(trials):
            chosen = "A" if rng.random() < p_a else "B"
            probs = [predicted, 1 - predicted]
            k = 0 if chosen == "A" else 1
            rows.append({"study": "s", "experiment": "s", "participant": str(i), "response_index": t,
                         "model": "m", "persona": "none", "options": ["A", "B"], "chosen": chosen,
                         "probs": probs, "p_chosen": probs[k], "correct": int(np.argmax(probs)) == k,
                         "nll_choice": -np.log(probs[k]), "nll_uniform": np.log(2),
                         "condition": "hi" if i % 2 else "lo", "unit_key": str(i)})
    return pd.DataFrame(rows)


def test_individual_tracking_separates_informed_from_population_predictions():
    informed = choice_prediction(_choices(informative=True), n_boot=300)
    flat = choice_prediction(_choices(informative=False), n_boot=300)
    assert informed.individual[0].correlation.value > 0.8 and informed.individual[0].correlation.p < 1e-6
    assert flat.individual == []  # a constant prediction cannot track anyone
    # Both match the population's choice frequencies about equally well...
    assert flat.population[0].tvd.value < 0.1 and informed.population[0].tvd.value < 0.1
    assert informed.individual[0].option == "A" and len(informed.individual) == 1  # binary: one rate
    # The informed model predicts each propensity exactly: r reaches the noise ceiling (40
    # trials of binomial noise), within sampling error.
    ceiling = informed.individual[0].noise_ceiling
    assert 0.7 < ceiling < 1.0 and abs(informed.individual[0].correlation.value - ceiling) < 0.1
    # ...but only the informed model predicts individuals: higher pseudo-R2.
    assert informed.fit[0].pseudo_r2.value > flat.fit[0].pseudo_r2.value
    assert flat.fit[0].pseudo_r2.value == pytest.approx(0.0, abs=1e-9)
    assert {p.condition for p in informed.population} == {None, "hi", "lo"}


def test_built_in_paper_pairs():
    pairs = read_pairs("paper")
    assert len(pairs) > 40
    assert {p.post_training for p in pairs} == {"instruction-tuned", "reasoning", "code", "math", "vision"}
    qwen3 = next(p for p in pairs if p.base == "Qwen/Qwen3-0.6B-Base")
    assert qwen3.post_trained == "Qwen/Qwen3-0.6B" and qwen3.size_b == 0.6 and qwen3.generation == "3"
    assert len({p.label for p in pairs}) == len(pairs)


def test_randomised_labels_do_not_correlate_by_base_rate():
    """60 identical participants, labels drawn per participant, a model that predicts the
    same for everyone: sorting labels made base rates alone correlate (r = +0.92)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        labels = list(rng.choice(list("ABCDEFGHJK"), 2, replace=False))
        for t in range(40):
            k = int(rng.random() < 0.3)  # the same propensity for everyone
            probs = [0.7, 0.3]
            rows.append({"study": "s", "experiment": "s", "participant": str(i), "response_index": t,
                         "model": "m", "persona": "none", "options": labels, "chosen": labels[k],
                         "probs": probs, "p_chosen": probs[k], "correct": k == 0,
                         "nll_choice": -np.log(probs[k]), "nll_uniform": np.log(2), "condition": None,
                         "unit_key": str(i)})
    result = choice_prediction(pd.DataFrame(rows), n_boot=100)
    assert result.individual == [] and result.population == []


def test_tvd_test_rejects_a_model_wrong_about_the_population():
    """(Its level under a correct model: bench/calibration.py, section choices.)"""
    from surrogate.analysis._choices import tvd_test

    probs = np.tile([0.6, 0.2, 0.2], (200, 1))
    trials = pd.DataFrame({"options": [["x", "y", "z"]] * 200, "probs": list(probs), "chosen": ["z"] * 200})
    assert tvd_test(trials, ["x", "y", "z"], n_sim=199)[1] < 0.01
    right = pd.DataFrame({"options": [["x", "y", "z"]] * 200, "probs": list(probs),
                          "chosen": ["x"] * 120 + ["y"] * 40 + ["z"] * 40})
    assert tvd_test(right, ["x", "y", "z"], n_sim=199)[1] > 0.5  # observed = predicted exactly


def test_misalignment_trend_across_generations():
    """Misalignment planted to grow by 0.2 per generation is recovered by the trend model
    (one family, four generations of one pair each: 2 df between generations, fewer after the
    Bell-McCaffrey correction)."""
    frames, pairs = [], []
    for gen in (1, 2, 3, 4):
        f = _two_models({e: 0.2 * gen for e in "abcdef"}, n=200, seed=gen)
        f["model"] = f["model"].map({"base": f"base{gen}", "chat": f"chat{gen}"})
        frames.append(f)
        pairs.append(ModelPair(base=f"base{gen}", post_trained=f"chat{gen}", generation=str(gen), size_b=gen))
    result = post_training_misalignment(pd.concat(frames, ignore_index=True), pairs, n_boot=0)
    trend = {(t.covariate, t.d): t for t in result.trends}
    gen = trend[("generation", "d_paper")]
    assert gen.slope.lo <= 0.2 <= gen.slope.hi
    assert gen.slope.p < 0.01 and gen.n_experiments == 6 and gen.n_pairs == 4 and gen.n_cells == 4
    assert gen.status == "ok" and 1 < gen.df <= 2
    # Sizes differ only between generations here, so no size trend can be told from a recipe's.
    size = trend[("log10_size_b", "cohens_d")]
    assert size.status.startswith("not testable") and size.slope.p is None


def test_paper_d_bootstrap_resamples_participants_for_both_models_at_once():
    """The same draw for both models: where the post-trained model is the base shifted by a
    constant for every response, each resample's d is that shift over the resampled SD, so the
    interval holds the point estimate and is narrower than from unshared draws would allow;
    it is reproducible by its seed. (Coverage: bench/calibration.py, section misalignment.)"""
    frame = _two_models({"a": 0.0, "b": 0.0}, n=60, seed=3)
    base = frame[frame.model == "base"]
    shifted = pd.concat([base, base.assign(model="chat", nll=base["nll"] + 0.3)], ignore_index=True)
    pair = [ModelPair(base="base", post_trained="chat")]
    pm = post_training_misalignment(shifted, pair, n_boot=300, seed=4).pairs[0]
    for exp, (lo, hi) in pm.d_paper_interval.items():
        assert lo <= pm.d_paper[exp] <= hi and hi - lo < 0.15  # unshared draws: about 0.7 wide at n = 60
    again = post_training_misalignment(shifted, pair, n_boot=300, seed=4).pairs[0]
    assert again.d_paper_interval == pm.d_paper_interval and again.mean_paper_interval == pm.mean_paper_interval


def test_trend_is_within_family_and_counts_pairs():
    from surrogate.analysis._misalignment import misalignment_trends
    from surrogate.testing.calibration import PAIR_SCENARIOS, simulate_pairs

    table, pairs = simulate_pairs(PAIR_SCENARIOS["pairs: no trend, pair SD 0.1"], 1)
    single = ModelPair(base=pairs[0].base, post_trained=pairs[0].post_trained, family="lonely", generation="9")
    result = post_training_misalignment(table, [*pairs, single], n_boot=0)
    trend = next(t for t in result.trends if t.covariate == "generation" and t.d == "d_paper")
    assert trend.n_pairs == 6 and trend.n_families == 2 and trend.n_cells == 6 and trend.left_out == ["lonely"]
    assert "6 pairs in 6 generation(s) of 2 families" in result.summary()
    # Pooled across families, the family differences would pass as a generation effect: with
    # one pair per generation the trend equals the within-family OLS slope per step.
    per_pair = {pm.pair.post_trained: pm.mean_paper for pm in result.pairs[:6]}
    x = np.array([float(p.generation) for p in pairs])
    y = np.array([per_pair[p.post_trained] for p in pairs])
    fam = np.array([p.family for p in pairs])
    xc = np.concatenate([x[fam == f] - x[fam == f].mean() for f in ("fam0", "fam1")])
    yc = np.concatenate([y[fam == f] - y[fam == f].mean() for f in ("fam0", "fam1")])
    assert trend.slope.value == pytest.approx(float(xc @ yc / (xc @ xc)), abs=1e-9)
    assert misalignment_trends(result.pairs[:2])[0] == []  # two pairs cannot give a trend


def test_pairs_of_one_generation_are_one_unit():
    """The unit of replication of a generation trend is the generation: pairs that share a
    generation's recipe add no degrees of freedom between generations, and a design with too
    few generations gets no p-value."""
    from surrogate.analysis import TrendPair, generation_trend

    def grid(per_cell: int, generations=(1, 2, 3), families=("a", "b")):
        rng = np.random.default_rng(0)
        return [TrendPair(label=f"{f}{g}{i}", family=f, generation=g, post_training="it", log10_size_b=i,
                          d=0.1 * g + rng.normal(0, 0.05)) for f in families for g in generations
                for i in range(per_cell)]

    one, many = generation_trend(grid(1), d="d", n_experiments=1), generation_trend(grid(8), d="d", n_experiments=1)
    assert one.n_cells == many.n_cells == 6 and many.n_pairs == 48
    assert many.df <= 3 + 1e-9 and one.df <= 3 + 1e-9  # never more than cells - families - 1
    few = generation_trend(grid(8, generations=(1, 2)), d="d", n_experiments=1)
    assert few.status.startswith("not testable") and few.slope.p is None and "recipe" in few.status
    assert generation_trend(grid(8, families=("a",)), d="d", n_experiments=1).status.startswith("not testable")


def test_cr2_matches_a_hand_computation_with_one_unit_per_cluster():
    """CR2 with singleton clusters is HC2: sum of x_i^2 e_i^2 / (1 - h_ii) in the sandwich."""
    from surrogate.analysis._trend import cr2_test

    rng = np.random.default_rng(1)
    x = rng.normal(size=12)
    X = np.column_stack([x, np.ones(12)])
    y = 0.3 * x + rng.normal(size=12)
    value, se, df = cr2_test(X, y, list(range(12)))
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ y
    e = y - X @ beta
    h = np.einsum("ij,jk,ik->i", X, bread, X)
    meat = (X * (e**2 / (1 - h))[:, None]).T @ X
    assert value == pytest.approx(beta[0]) and se == pytest.approx(np.sqrt((bread @ meat @ bread)[0, 0]))
    assert 1 < df < 10


def test_pairs_toml_accepts_numbers(tmp_path):
    f = tmp_path / "pairs.toml"
    f.write_text('[[pairs]]\nbase = "b"\npost_trained = "c"\ngeneration = 3\nsize_b = 8\n')
    assert read_pairs(f)[0].generation == "3"
