"""The relayer API's chain reads: quotes and protocol figures (supply, burned, minted, CR, status, epoch).

These are plain view calls through web3.py, off the hot path; FastAPI runs them in its thread pool. The CMP
burned so far is summed from the BME core's `CreditsMinted` events, incrementally from the last block read.
"""

from __future__ import annotations

import threading
from typing import cast

from fastapi import FastAPI, HTTPException, Query

from bme.chain.client import ChainClient
from bme.chain.deploy import Deployment, Protocol
from bme.chain.pricing import find_model, read_market
from bme.economics.quote import compute_quote
from bme.economics.status import STATUS_NAMES
from bme.errors import BmeError
from bme.relayer.responses import CoreStatus, JobQuote, ProtocolFigures, refusals


class ChainFigures:
    def __init__(self, rpc_url: str, deployment: Deployment) -> None:
        self.rpc_url = rpc_url
        self.deployment = deployment
        self._protocol: Protocol | None = None
        self._lock = threading.Lock()
        self._burned = 0
        self._burned_through = deployment.first_block - 1

    @property
    def protocol(self) -> Protocol:
        if self._protocol is None:
            self._protocol = Protocol.at(ChainClient.connect(self.rpc_url), self.deployment)
        return self._protocol

    def burned(self, head: int) -> int:
        """CMP burned for credits since the deployment, up to block `head`."""
        with self._lock:
            if head > self._burned_through:
                logs = self.protocol.bme.events.CreditsMinted().get_logs(
                    from_block=self._burned_through + 1, to_block=head
                )
                self._burned += sum(int(ev["args"]["tokensBurned"]) for ev in logs)
                self._burned_through = head
            return self._burned

    def figures(self) -> ProtocolFigures:
        p = self.protocol
        head = p.client.w3.eth.block_number
        bme = p.bme.functions
        outstanding = int(bme.outstandingCredits().call(block_identifier=head))
        return ProtocolFigures(
            block=head,
            cmp_supply=int(p.token.functions.totalSupply().call(block_identifier=head)),
            cmp_burned=self.burned(head),
            cmp_reissued=int(bme.totalReissued().call(block_identifier=head)),
            cmp_newly_issued=int(bme.totalNewIssuance().call(block_identifier=head)),
            cmp_emitted=int(p.emissions.functions.totalReleased().call(block_identifier=head)),
            remint_credits=int(bme.remintCredits().call(block_identifier=head)),
            outstanding_credits=outstanding,
            collateral_ratio_bps=int(bme.collateralRatioBps().call(block_identifier=head))
            if outstanding
            else None,
            status=cast(CoreStatus, STATUS_NAMES[int(bme.status().call(block_identifier=head))]),
            current_epoch=int(p.escrow.functions.currentEpoch().call(block_identifier=head)),
            epoch_length=int(p.escrow.functions.epochLength().call()),
        )

    def install(self, app: FastAPI) -> None:
        @app.get(
            "/v1/protocol",
            response_description="The figures at the latest block.",
            responses=refusals({503: "the chain does not answer"}),
        )
        def protocol_figures() -> ProtocolFigures:
            """Supply, burned, minted (re-issue, new issuance, emission), remint credits, CR, status, epoch.
            CMP amounts are base units (18 decimals), credits CRD base units (6 decimals)."""
            try:
                return self.figures()
            except BmeError as exc:
                raise HTTPException(503, f"the chain is unavailable: {exc}") from None

        @app.get(
            "/v1/quote",
            response_description="The quote.",
            responses=refusals({400: "a model the price book does not list, or the chain does not answer"}),
        )
        def quote(
            model: str = Query(description="A model of the price book, by name or id."),
            max_tokens: int = Query(ge=1, le=1_000_000, description="Most answer tokens."),
            prompt_tokens: int = Query(default=0, ge=0, le=1_000_000, description="Prompt tokens."),
        ) -> JobQuote:
            """The maximum and expected cost of a job, in credits and in CMP at the current oracle price."""
            try:
                found = find_model(self.protocol, model)
                q = compute_quote(
                    found,
                    read_market(self.protocol),
                    prompt_tokens=prompt_tokens,
                    max_output_tokens=max_tokens,
                )
            except BmeError as exc:
                raise HTTPException(400, str(exc)) from None
            return JobQuote.model_validate(q, from_attributes=True)
