"""Client-side encryption of backup files in the age format (https://age-encryption.org).

pyrage binds rage, the Rust implementation of age: files are encrypted and decrypted as
streams (never whole in memory), and an operator can decrypt a backup with the standard
`age -d -i key.txt` wherever the service's own code is not at hand.
"""

from pathlib import Path

import pyrage
from pyrage import x25519

from .errors import BackupError

GENERATE_COMMAND = (
    "age-keygen, or python -c 'import pyrage; print(pyrage.x25519.Identity.generate())'"
)


def _identity(key: str) -> x25519.Identity:
    try:
        return x25519.Identity.from_str(key.strip())
    except (pyrage.IdentityError, ValueError):
        raise BackupError(
            "BACKUP_ENCRYPTION_KEY is not an age secret key (AGE-SECRET-KEY-1...); make one "
            f"with {GENERATE_COMMAND}"
        ) from None


def encrypt_file(source: Path, destination: Path, key: str) -> None:
    identity = _identity(key)
    try:
        pyrage.encrypt_file(str(source), str(destination), [identity.to_public()])
    except (pyrage.EncryptError, OSError) as error:
        raise BackupError(f"cannot encrypt the backup ({error}); free space or fix it") from None


def decrypt_file(source: Path, destination: Path, key: str | None, name: str) -> None:
    if not key:
        raise BackupError(
            f"{name} is encrypted: set BACKUP_ENCRYPTION_KEY to the key it was made with"
        )
    identity = _identity(key)
    try:
        pyrage.decrypt_file(str(source), str(destination), [identity])
    except pyrage.DecryptError:
        raise BackupError(
            f"cannot decrypt {name}: BACKUP_ENCRYPTION_KEY is not the key it was made with"
        ) from None
    except OSError as error:
        raise BackupError(f"cannot decrypt {name} ({error}); free space or fix it") from None
