"""The ledger (tests/support/guests/wallet): adds a deposit to either kind of wallet."""

from wit_world import exports
from wit_world.exports.ledger import Wallet, Wallet_Checking, Wallet_Savings
from wit_world.imports.types import Balance


class Ledger(exports.Ledger):
    def deposit(self, into: Wallet, cents: int) -> Wallet:
        if isinstance(into, Wallet_Checking):
            return Wallet_Checking(Balance(into.value.cents + cents))
        return Wallet_Savings(Balance(into.value.cents + cents))
