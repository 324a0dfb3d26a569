"""The teller (tests/support/guests/wallet): pays every amount into a wallet through the linked ledger."""

from wit_world import exports
from wit_world.imports import ledger


class Teller(exports.Teller):
    def pay_all(self, into: ledger.Wallet, amounts: list[int]) -> ledger.Wallet:
        for cents in amounts:
            into = ledger.deposit(into, cents)
        return into
