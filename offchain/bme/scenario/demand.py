"""Demand: the jobs users request in each epoch, drawn from the scenario's seed.

A group's job count in an epoch is Poisson with mean `jobs_per_epoch x growth x trend x price response`; each
job goes to one of the group's users (uniformly), picks a model by weight and token counts in the group's
ranges. A user asks for at most the group's largest output, so its reservation covers any answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bme.scenario.prices import YEAR, PricePath

if TYPE_CHECKING:
    from bme.scenario.spec import Scenario


@dataclass(frozen=True, slots=True)
class JobRequest:
    """One job a user wants: `user` indexes all users in group order."""

    user: int
    model_id: int
    input_tokens: int
    output_tokens: int
    max_output_tokens: int


class Demand:
    """The jobs of each epoch, in a fixed order (group by group, then as drawn).

    Draws are made for `CHUNK` epochs at a time, group by group (counts, then users, models and token counts
    for all of the chunk's jobs), so epochs are asked for in order.
    """

    CHUNK = 64

    def __init__(self, s: Scenario, path: PricePath, rng: np.random.Generator) -> None:
        self._s = s
        self._path = path
        self._rng = rng
        starts = np.cumsum([0] + [g.users for g in s.demand.groups])
        self._first_user = [int(x) for x in starts[:-1]]
        reference = s.demand.reference_price
        self._reference = reference if reference is not None else path.market[0] / 10**18
        self._model_ids = [np.array(sorted(g.models), dtype=np.int64) for g in s.demand.groups]
        self._weights = []
        for g in s.demand.groups:
            w = np.array([g.models[m] for m in sorted(g.models)], dtype=np.float64)
            self._weights.append(w / w.sum())
        self._chunk_first = -1
        self._chunk: list[list[JobRequest]] = []

    def multiplier(self, epoch: int) -> float:
        """Demand relative to the groups' base rates in `epoch`."""
        d = self._s.demand
        t = epoch * self._s.epoch_length
        m = 1.0
        for step in d.growth:
            if step.at <= t:
                m *= step.factor
        if d.trend_per_year:
            m *= (1.0 + d.trend_per_year) ** (t / YEAR)
        if d.elasticity:
            m *= (self._path.market[epoch] / 10**18 / self._reference) ** d.elasticity
        return m

    def requests(self, epoch: int) -> list[JobRequest]:
        """The jobs requested in `epoch`; epochs are asked for in order (a chunk is drawn once)."""
        first = epoch - epoch % self.CHUNK
        if first != self._chunk_first:
            if first < self._chunk_first:
                raise ValueError(f"epoch {epoch} was drawn already: ask for epochs in order")
            self._chunk_first, self._chunk = first, self._draw(first)
        return self._chunk[epoch - first]

    def _draw(self, first: int) -> list[list[JobRequest]]:
        epochs = range(first, min(first + self.CHUNK, self._s.epochs))
        per_epoch: list[list[JobRequest]] = [[] for _ in epochs]
        multipliers = np.array([self.multiplier(k) for k in epochs])
        rng = self._rng
        for gi, g in enumerate(self._s.demand.groups):
            means = g.jobs_per_epoch * multipliers
            means = np.where(np.isfinite(means) & (means > 0), means, 0.0)
            counts = rng.poisson(means)
            n = int(counts.sum())
            if n == 0:
                continue
            users = (rng.integers(0, g.users, n) + self._first_user[gi]).tolist()
            models = rng.choice(self._model_ids[gi], size=n, p=self._weights[gi]).tolist()
            inputs = rng.integers(g.input_tokens.min, g.input_tokens.max + 1, n).tolist()
            outputs = rng.integers(g.output_tokens.min, g.output_tokens.max + 1, n).tolist()
            top = g.output_tokens.max
            jobs = [JobRequest(*fields, top) for fields in zip(users, models, inputs, outputs, strict=True)]
            at = 0
            for i, count in enumerate(counts.tolist()):
                per_epoch[i].extend(jobs[at : at + count])
                at += count
        return per_epoch
