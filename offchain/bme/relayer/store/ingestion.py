"""Ingestion: the rows an event range produces and the checkpoint, written together; rollback after a reorg.

One transaction per ingested range, so a crash keeps both the rows and the new checkpoint or neither.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from sqlalchemy import Connection, Text, bindparam, delete, insert, literal, null, select, union_all, update

from bme.chain.events import Event
from bme.job_states import JobState
from bme.relayer.store.base import (
    BLOCK_HASHES,
    CHECKPOINTS,
    JOBS,
    MODELS,
    OPERATORS,
    RECORD_SETTLEMENT,
    REVEALS,
    SETTLEMENTS,
    StoreBase,
    state_in,
)
from bme.relayer.store.records import IngestResult, OperatorInfo

CHECKPOINT = "events"
KEEP_BLOCK_HASHES = 512
#: Old block hashes are pruned once in this many blocks.
_PRUNE_EVERY = 64

_S = JobState
_CHECKPOINT_ROW = select(CHECKPOINTS.c.block_number, CHECKPOINTS.c.block_hash).where(
    CHECKPOINTS.c.name == CHECKPOINT
)
_MOVE_CHECKPOINT = (
    update(CHECKPOINTS)
    .where(CHECKPOINTS.c.name == CHECKPOINT)
    .values(block_number=bindparam("n"), block_hash=bindparam("h"))
)
_PRUNE_HASHES = delete(BLOCK_HASHES).where(BLOCK_HASHES.c.block_number < bindparam("below"))
_INSERT_JOB = insert(JOBS)
_INSERT_HASH = insert(BLOCK_HASHES)
#: The events' known jobs (with their states) and the opened jobs' reveals (with their models), in one
#: statement: rows tagged 'j' and 'r'.
_KNOWN_AND_REVEALED = union_all(
    select(
        literal("j").label("kind"),
        JOBS.c.job_id.label("job_id"),
        JOBS.c.state.label("value"),
        null().cast(Text).label("request"),
    ).where(JOBS.c.job_id.in_(bindparam("ids", expanding=True))),
    select(literal("r"), REVEALS.c.job_id, REVEALS.c.model, REVEALS.c.request).where(
        REVEALS.c.job_id.in_(bindparam("opened", expanding=True))
    ),
)
_MODEL_NAMES = select(MODELS.c.model_id, MODELS.c.name)


def job_key(job_id: int) -> str:
    """A job id as the store keys it: 0x and 64 hex digits."""
    return f"0x{job_id:064x}"


def check_reveal(
    model: str, model_id: int, models: dict[str, int], request: str, max_output_tokens: int | None
) -> tuple[JobState, str | None]:
    """REVEALED if the revealed request asks for the model the job paid for, and its `max_tokens` fits the
    job's on-chain output cap (None: a job without caps); else FAILED and why."""
    wanted = models.get(model)
    if wanted is None:
        return _S.FAILED, f"the request asks for model {model!r}, which the price book does not list"
    if wanted != model_id:
        return _S.FAILED, f"the request asks for model {model!r} but the job paid for model {model_id}"
    asked = requested_max_tokens(request)
    if max_output_tokens is not None and asked is not None and max_output_tokens < asked:
        return _S.FAILED, (
            f"the request asks for up to {asked} answer tokens but the job's payment caps them at "
            f"{max_output_tokens}: a full answer could not be settled"
        )
    return _S.REVEALED, None


def requested_max_tokens(request: str) -> int | None:
    """The `max_tokens` of a revealed request text (checked when it was revealed), or None if it has none."""
    try:
        value = json.loads(request).get("max_tokens")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


class IngestionStore(StoreBase):
    _model_cache: dict[str, int] | None = None

    def checkpoint(self) -> tuple[int, str] | None:
        with self.engine.connect() as c:
            row = c.execute(_CHECKPOINT_ROW).first()
            return None if row is None else (int(row[0]), str(row[1]))

    def recent_hashes(self, limit: int = KEEP_BLOCK_HASHES) -> list[tuple[int, str]]:
        """Stored block hashes, newest first."""
        with self.engine.connect() as c:
            rows = c.execute(
                select(BLOCK_HASHES.c.block_number, BLOCK_HASHES.c.block_hash)
                .order_by(BLOCK_HASHES.c.block_number.desc())
                .limit(limit)
            ).all()
            return [(int(n), str(h)) for n, h in rows]

    def models(self) -> dict[str, int]:
        """Model ids by name (delisted models included: their open jobs still settle)."""
        if self._model_cache is None:
            with self.engine.connect() as c:
                self._model_cache = self._models(c)
        return self._model_cache

    @staticmethod
    def _models(c: Connection) -> dict[str, int]:
        return {str(name): int(mid) for mid, name in c.execute(_MODEL_NAMES)}

    def ingest(
        self,
        events: Sequence[Event],
        hashes: dict[int, str],
        checkpoint: tuple[int, str],
        operators: Sequence[OperatorInfo],
    ) -> IngestResult:
        """Stores the rows of one ingested block range and moves the checkpoint, atomically."""
        now = time.time()
        result = IngestResult()
        with self.writing() as c:
            self._check_fence(c)
            models = self._model_cache if self._model_cache is not None else self._models(c)
            ids = [job_key(ev.args["jobId"]) for ev in events if "jobId" in ev.args]
            known: dict[str, str] = {}
            revealed: dict[str, tuple[str, str]] = {}
            if ids:
                opened = [job_key(ev.args["jobId"]) for ev in events if ev.name == "JobOpened"]
                for kind, job_id, value, request in c.execute(
                    _KNOWN_AND_REVEALED, {"ids": ids, "opened": opened}
                ):
                    if kind == "j":
                        known[str(job_id)] = str(value)
                    else:
                        revealed[str(job_id)] = (str(value), str(request))
            settlements: list[Event] = []
            for ev in events:
                if ev.name == "JobOpened":
                    self._on_opened(c, ev, now, models, known, revealed, result)
                elif ev.name == "JobSettled":
                    settlements.append(ev)
                elif ev.name == "JobExpired":
                    self._on_expired(c, ev, now, known, result)
                elif ev.name in ("ModelPriced", "ModelDelisted"):
                    self._on_model(c, ev)
                    models = self._models(c)
            self._on_settled(c, settlements, now, known, result)
            for op in operators:
                self._upsert_operator(c, op, checkpoint[0])
            if operators:
                self.forget_operators()  # claims read the registry's new view
            self._move_checkpoint(c, {**hashes, checkpoint[0]: checkpoint[1]}, checkpoint)
        return result

    def _move_checkpoint(self, c: Connection, blocks: dict[int, str], checkpoint: tuple[int, str]) -> None:
        c.execute(_INSERT_HASH, [{"block_number": n, "block_hash": h} for n, h in blocks.items()])
        if checkpoint[0] % _PRUNE_EVERY == 0:
            c.execute(_PRUNE_HASHES, {"below": checkpoint[0] - KEEP_BLOCK_HASHES})
        self._set_checkpoint(c, checkpoint)

    @staticmethod
    def _set_checkpoint(c: Connection, checkpoint: tuple[int, str]) -> None:
        """The last block whose events are all in the store (the row is made on the first write)."""
        moved = c.execute(_MOVE_CHECKPOINT, {"n": checkpoint[0], "h": checkpoint[1]})
        if not moved.rowcount:
            c.execute(
                insert(CHECKPOINTS).values(
                    name=CHECKPOINT, block_number=checkpoint[0], block_hash=checkpoint[1]
                )
            )

    def _on_opened(
        self,
        c: Connection,
        ev: Event,
        now: float,
        models: dict[str, int],
        known: dict[str, str],
        revealed: dict[str, tuple[str, str]],
        result: IngestResult,
    ) -> None:
        job_id = job_key(ev.args["jobId"])
        if job_id in known:
            # Re-ingested after a reorganisation that kept it past dispatch: it lives in the new blocks too.
            c.execute(
                update(JOBS)
                .where(JOBS.c.job_id == job_id)
                .values(block_number=ev.block_number, block_hash=ev.block_hash, tx_hash=ev.tx_hash)
            )
            return
        state, reason = _S.OPENED, None
        reveal = revealed.get(job_id)
        if reveal is not None:
            model, request = reveal
            state, reason = check_reveal(
                model, ev.args["modelId"], models, request, ev.args["maxOutputTokens"]
            )
        c.execute(
            _INSERT_JOB,
            {
                "job_id": job_id,
                "payer": ev.args["payer"],
                "model_id": ev.args["modelId"],
                "max_credits": ev.args["maxCredits"],
                "tokens_burned": str(ev.args["tokensBurned"]),
                "deadline": ev.args["deadline"],
                "spec_hash": "0x" + ev.args["specHash"].hex(),
                "max_input_tokens": ev.args["maxInputTokens"],
                "max_output_tokens": ev.args["maxOutputTokens"],
                "block_number": ev.block_number,
                "block_hash": ev.block_hash,
                "tx_hash": ev.tx_hash,
                "state": state.value,
                "reason": reason,
                "tries": 0,
                "lease_until": 0.0,
                "opened_at": now,
                "updated_at": now,
            },
        )
        known[job_id] = state.value
        self.record(c, [job_id], _S.OPENED, now, f"block {ev.block_number}")
        result.opened += 1
        if state != _S.OPENED:
            self.record(c, [job_id], state, now, reason)
            if state == _S.REVEALED:
                result.revealed.append(job_id)

    def _on_settled(
        self, c: Connection, events: Sequence[Event], now: float, known: dict[str, str], result: IngestResult
    ) -> None:
        """The events are the record of settlements: their charges and refunds are written even when the
        settler saw the receipt first (then the jobs are SETTLED already and no second move is recorded).
        One move per settlement transaction, one statement for all the charges."""
        ours = [(job_key(ev.args["jobId"]), ev) for ev in events if job_key(ev.args["jobId"]) in known]
        by_tx: dict[tuple[str, int], list[str]] = {}
        for job_id, ev in ours:
            if known[job_id] != _S.SETTLED.value:
                by_tx.setdefault((ev.tx_hash, ev.block_number), []).append(job_id)
        for (tx_hash, block), ids in by_tx.items():
            values = {"settle_tx": tx_hash, "closed_block": block, "lease_until": 0.0}
            moved = self.move(c, ids, _S.SETTLED, now, f"block {block} tx {tx_hash}", values=values)
            for job_id in moved:
                known[job_id] = _S.SETTLED.value
            result.settled += len(moved)
        if ours:
            c.execute(
                RECORD_SETTLEMENT,
                [
                    {
                        "w_id": job_id,
                        "charge": int(ev.args["charge"]),
                        "refund": int(ev.args["refund"]),
                        "settle_tx": ev.tx_hash,
                        "closed_block": ev.block_number,
                    }
                    for job_id, ev in ours
                ],
            )

    def _on_expired(
        self, c: Connection, ev: Event, now: float, known: dict[str, str], result: IngestResult
    ) -> None:
        job_id = job_key(ev.args["jobId"])
        if job_id not in known or known[job_id] == _S.EXPIRED.value:
            return
        values = {"closed_block": ev.block_number, "lease_until": 0.0}
        if self.move(c, [job_id], _S.EXPIRED, now, f"block {ev.block_number} tx {ev.tx_hash}", values=values):
            known[job_id] = _S.EXPIRED.value
            result.expired += 1

    def _on_model(self, c: Connection, ev: Event) -> None:
        self._model_cache = None
        model_id = ev.args["modelId"]
        exists = c.execute(select(MODELS.c.model_id).where(MODELS.c.model_id == model_id)).first()
        if ev.name == "ModelDelisted":
            if exists is not None:
                c.execute(
                    update(MODELS)
                    .where(MODELS.c.model_id == model_id)
                    .values(listed=False, block_number=ev.block_number)
                )
            return
        values = {
            "name": ev.args["name"],
            "listed": True,
            "block_number": ev.block_number,
            "input_price": ev.args["inputPricePerMillion"],
            "output_price": ev.args["outputPricePerMillion"],
        }
        if exists is None:
            c.execute(insert(MODELS).values(model_id=model_id, **values))
        else:
            c.execute(update(MODELS).where(MODELS.c.model_id == model_id).values(**values))

    @staticmethod
    def _upsert_operator(c: Connection, op: OperatorInfo, block: int) -> None:
        values = {
            "endpoint": op.endpoint,
            "models": ",".join(str(m) for m in op.models),
            "active": op.active,
            "jailed": op.jailed,
            "block_number": block,
        }
        changed = c.execute(update(OPERATORS).where(OPERATORS.c.address == op.address).values(**values))
        if not changed.rowcount:
            c.execute(
                insert(OPERATORS).values(
                    address=op.address,
                    dispatched=0,
                    succeeded=0,
                    failed=0,
                    latency_ewma_ms=0.0,
                    unreachable=0,
                    answered_errors=0,
                    **values,
                )
            )

    def rollback(self, ancestor: tuple[int, str]) -> int:
        """Forgets what was ingested after block `ancestor` (a reorganisation); returns the jobs affected."""
        number, block_hash = ancestor
        now = time.time()
        with self.writing() as c:
            # Payments in the dropped blocks, of jobs not yet served: the jobs wait for them again.
            dropped = [
                str(j)
                for (j,) in c.execute(
                    select(JOBS.c.job_id).where(
                        JOBS.c.block_number > number, state_in([_S.OPENED, _S.REVEALED])
                    )
                )
            ]
            if dropped:
                c.execute(delete(JOBS).where(JOBS.c.job_id.in_(dropped)))
                self.record(c, dropped, _S.PENDING, now, f"dropped by a reorganisation below {number}")
            # Settlements and expiries mined in the dropped blocks did not happen after all.
            reopened = c.execute(
                select(JOBS.c.job_id, JOBS.c.state, JOBS.c.answer, REVEALS.c.job_id.label("revealed"))
                .outerjoin(REVEALS, REVEALS.c.job_id == JOBS.c.job_id)
                .where(JOBS.c.closed_block > number)
            ).all()
            cleared = {"closed_block": None, "settle_tx": None, "charge": None, "refund": None}
            for job_id, _state, answer, revealed in reopened:
                back = _S.COMPLETED if answer is not None else _S.REVEALED if revealed else _S.OPENED
                self.move(
                    c, [str(job_id)], back, now, "its closing block was reorganised away", values=cleared
                )
            c.execute(
                update(SETTLEMENTS)
                .where(SETTLEMENTS.c.mined_block > number)
                .values(status="reorged", mined_block=None)
            )
            c.execute(delete(BLOCK_HASHES).where(BLOCK_HASHES.c.block_number >= number))
            c.execute(_INSERT_HASH, [{"block_number": number, "block_hash": block_hash}])
            self._set_checkpoint(c, ancestor)
        return len(dropped) + len(reopened)
