"""Password hashing with Argon2id (argon2-cffi).

>>> h = hash_password("correct horse")
>>> verify_password(h, "correct horse"), verify_password(h, "wrong")
(True, False)
"""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tuban.errors import UsageError

__all__ = ["MIN_PASSWORD_LENGTH", "dummy_verify", "hash_password", "needs_rehash", "verify_password"]

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    """An Argon2id hash of *password* (refuses passwords shorter than 8 characters)."""
    if not isinstance(password, str) or not (MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH):
        raise UsageError(
            f"a password must be {MIN_PASSWORD_LENGTH}–{MAX_PASSWORD_LENGTH} characters",
            hint="choose a longer password",
        )
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether *password* matches *password_hash*; never raises for a wrong or bad hash."""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    try:
        return bool(_hasher().verify(password_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher().hash("tuban-dummy-password")


def dummy_verify(password: str) -> None:
    """Spend the time of one verification (for unknown users: no timing oracle)."""
    verify_password(_dummy_hash(), password if isinstance(password, str) else "")


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash uses outdated parameters and should be replaced at next login."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
