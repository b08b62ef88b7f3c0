import ape
from web3.exceptions import ContractLogicError as W3CLE
from tests.conftest import CMP, Deployed
from tests.contracts.helpers import advance


def test_a(protocol: Deployed, chain, project) -> None:
    advance(chain, 100)
    m = protocol.bme.quoteBurn
    w3 = chain.provider.web3
    try:
        w3.eth.call({"to": m.contract.address, "data": "0x" + bytes(m.encode_input(100)).hex()})
    except W3CLE as err:
        print("RAW", type(err), repr(err.data))
