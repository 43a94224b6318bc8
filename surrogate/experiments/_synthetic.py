"""Synthetic participants: traits drawn from a population, parameters linked to traits.

A participant's parameter on its unbounded scale is
    u = T(mean) + sum over links of slope * z(trait) + sd * noise,
where z standardises the trait by the population's mean and sd. `links=()` declares that
traits carry no information about behaviour; a link declares how much they do. The traits
are written into the transcript's metadata, so every persona strategy can show them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ._base import Experiment, SessionRecord, play, with_condition
from ._cognitive import ParamSpec


class TraitSpec(BaseModel):
    """A trait's population distribution: normal (clipped, optionally rounded) or categorical."""

    model_config = ConfigDict(frozen=True)
    mean: float = 0.0
    sd: float = 1.0
    low: float | None = None
    high: float | None = None
    integer: bool = True
    categories: tuple[str, ...] | None = None

    def sample(self, rng: np.random.Generator) -> Any:
        if self.categories:
            return str(rng.choice(self.categories))
        x = float(np.clip(rng.normal(self.mean, self.sd), self.low if self.low is not None else -np.inf,
                          self.high if self.high is not None else np.inf))
        return int(round(x)) if self.integer else round(x, 3)

    def z(self, value: Any) -> float:
        if self.categories:
            return 0.0
        return (float(value) - self.mean) / self.sd


# Paper persona fields, so the paper's interview prompt shows them.
DEFAULT_TRAITS: dict[str, TraitSpec] = {
    "age": TraitSpec(mean=38, sd=12, low=18, high=80),
    "gender": TraitSpec(categories=("female", "male")),
    "STAI-T": TraitSpec(mean=40, sd=10, low=20, high=80),  # trait anxiety
    "BIS-11": TraitSpec(mean=62, sd=10, low=30, high=120),  # impulsivity
}


class TraitLink(BaseModel):
    """`slope` units of the parameter's unbounded scale per population SD of the trait."""

    model_config = ConfigDict(frozen=True, strict=True, allow_inf_nan=False, extra="forbid")
    trait: str = Field(min_length=1)
    param: str = Field(min_length=1)
    slope: float

    @classmethod
    def parse(cls, text: str) -> "TraitLink":
        """`TRAIT>PARAM=SLOPE`, e.g. `STAI-T>loss_aversion=0.4`."""
        try:
            left, slope = text.rsplit("=", 1)
            trait, param = left.split(">", 1)
            return cls(trait=trait.strip(), param=param.strip(), slope=float(slope))
        except (ValueError, ValidationError):
            raise ValueError(f"cannot read trait link {text!r}; expected TRAIT>PARAM=SLOPE") from None


class SyntheticSpec(BaseModel):
    """Who the synthetic participants are and how their traits shape their parameters."""

    model_config = ConfigDict(frozen=True)
    traits: dict[str, TraitSpec] = Field(default_factory=lambda: dict(DEFAULT_TRAITS))
    links: tuple[TraitLink, ...] = ()
    params: dict[str, ParamSpec] = Field(default_factory=dict, description="Overrides of the "
                                         "cognitive model's default parameter distributions.")

    @model_validator(mode="after")
    def _links_name_traits(self) -> "SyntheticSpec":
        for link in self.links:
            if link.trait not in self.traits:
                raise ValueError(f"link uses trait {link.trait!r}, which is not among {list(self.traits)}")
        return self

    def param_specs(self, model_cls: Any) -> dict[str, ParamSpec]:
        specs = {**model_cls.PARAMS, **self.params}
        for link in self.links:
            if link.param not in specs:
                raise ValueError(f"link targets parameter {link.param!r}; "
                                 f"{model_cls.__name__} has {list(specs)}")
        return specs

    def linked_params(self, model_cls: Any, traits: Mapping[str, Any]) -> dict[str, float]:
        """Parameters predicted from traits alone (no individual noise); missing traits count
        as the population mean. This is what an oracle that knows the links can infer."""
        out = {}
        for name, spec in self.param_specs(model_cls).items():
            u = spec.to_unbounded(spec.mean)
            for link in self.links:
                if link.param == name and link.trait in traits:
                    u += link.slope * self.traits[link.trait].z(traits[link.trait])
            out[name] = spec.to_natural(u)
        return out

    def sample_params(self, model_cls: Any, traits: Mapping[str, Any],
                      rng: np.random.Generator) -> dict[str, float]:
        base = self.linked_params(model_cls, traits)
        out = {}
        for name, spec in self.param_specs(model_cls).items():
            out[name] = spec.to_natural(spec.to_unbounded(base[name]) + spec.sd * rng.normal())
        return out


def simulate_synthetic(
    experiment: Experiment,
    n: int,
    *,
    seed: int = 0,
    spec: SyntheticSpec | None = None,
    model_cls: Any = None,
    id_prefix: str = "syn",
    stream: int = 0,
) -> list[SessionRecord]:
    """Run n synthetic participants through an experiment; seeded and reproducible.

    Participant i's traits come from (seed, i) whatever the `stream`; another stream gives
    the same traits with independent parameter noise, task randomness and choices (a second
    population paired with the first person by person, sharing nothing but the traits)."""
    spec = spec or SyntheticSpec()
    model_cls = model_cls or getattr(experiment, "cognitive_model", None)
    if model_cls is None:
        raise ValueError(f"experiment {experiment.name!r} declares no cognitive_model; pass model_cls")
    records = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        traits = {name: t.sample(rng) for name, t in spec.traits.items()}
        if stream:
            rng = np.random.default_rng([seed, i, stream, 0])
        params = spec.sample_params(model_cls, traits, rng)
        model = model_cls(**params)
        session = experiment.session(np.random.default_rng([seed, i, 1] if not stream else [seed, i, stream, 1]))
        trials, choices, feedback = play(session, lambda t: _draw(rng, model.probs(t)), model.observe)
        records.append(SessionRecord(
            experiment=experiment.name, participant=f"{id_prefix}-{i + 1:04d}", metadata=with_condition(traits, trials),
            instructions=session.instructions, trials=trials, choices=choices, feedback=feedback,
            params=params, agent="synthetic"))
    return records


def _draw(rng: np.random.Generator, p: np.ndarray) -> int:
    return int(rng.choice(len(p), p=p))


def choice_nlls(record: SessionRecord, model_cls: Any, params: Mapping[str, float]) -> np.ndarray:
    """-log p(recorded choice) per trial under a cognitive model with the given parameters."""
    model = model_cls(**params)
    out = np.empty(len(record.trials))
    for t, (trial, choice, fb) in enumerate(zip(record.trials, record.choices, record.feedback)):
        k = trial.options.index(choice)
        out[t] = -np.log(model.probs(trial)[k])
        model.observe(trial, k, fb)
    return out


def records_to_jsonl(records: Sequence[SessionRecord]) -> str:
    import json

    return "".join(json.dumps(r.to_psych201()) + "\n" for r in records)
