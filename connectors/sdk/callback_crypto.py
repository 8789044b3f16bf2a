"""The WXBizMsgCrypt callback scheme shared by WeCom and DingTalk.

Both platforms encrypt the callbacks they push (and expect encrypted answers) the
same way:

* key = base64decode(EncodingAESKey + "="), 32 bytes; AES-256-CBC with IV = key[:16];
* plaintext = 16 random bytes | 4-byte big-endian length of msg | msg (UTF-8) | receive id;
* PKCS#7 padding to a 32-byte block (not AES's 16), the ciphertext sent as base64;
* signature = lowercase hex SHA1 of the sorted [token, timestamp, nonce, encrypt] joined.

The receive id is the WeCom CorpID (suite id for third-party apps) or the DingTalk
owner key (AppKey for console subscriptions, CorpId for ``register_call_back``,
SuiteKey for ISVs). Every failure raises a :class:`CallbackCryptoError`, which is a
:class:`~connectors.sdk.triggers.WebhookRejected`, so a trigger's ``verify`` can let
it propagate and the service answers 401.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import struct
import time
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from connectors.sdk.triggers import WebhookRejected

__all__ = [
    "BLOCK_SIZE",
    "CallbackCryptoError",
    "EncryptedMessage",
    "InvalidAesKey",
    "InvalidCiphertext",
    "InvalidReceiveId",
    "InvalidSignature",
    "MsgCrypt",
    "pkcs7_pad",
    "pkcs7_unpad",
]

BLOCK_SIZE = 32
_RANDOM_ALPHABET = string.ascii_letters + string.digits


class CallbackCryptoError(WebhookRejected):
    """A callback could not be authenticated or decrypted."""


class InvalidSignature(CallbackCryptoError):
    """The signature does not match token, timestamp, nonce and ciphertext (WeCom -40001, DingTalk 900005)."""


class InvalidReceiveId(CallbackCryptoError):
    """The decrypted message is addressed to another corp/app (WeCom -40005, DingTalk 900010)."""


class InvalidCiphertext(CallbackCryptoError):
    """The ciphertext is not base64, truncated, badly padded or its length header is inconsistent."""


class InvalidAesKey(ValueError):
    """The configured EncodingAESKey is not 43 base64 characters decoding to 32 bytes."""


class EncryptedMessage(NamedTuple):
    """An encrypted message and the values that sign it, as the platforms send them."""

    encrypted: str
    signature: str
    timestamp: str
    nonce: str


def pkcs7_pad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Pad ``data`` PKCS#7-style to ``block_size`` (a full block is added when aligned)."""
    n = block_size - len(data) % block_size
    return data + bytes([n]) * n


def pkcs7_unpad(data: bytes, block_size: int = BLOCK_SIZE) -> bytes:
    """Remove PKCS#7 padding, raising :class:`InvalidCiphertext` if it is malformed."""
    if not data:
        raise InvalidCiphertext("empty plaintext")
    n = data[-1]
    if not 1 <= n <= block_size or n > len(data) or data[-n:] != bytes([n]) * n:
        raise InvalidCiphertext("bad padding")
    return data[:-n]


def _random_text(length: int) -> str:
    return "".join(secrets.choice(_RANDOM_ALPHABET) for _ in range(length))


def _decode_aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise InvalidAesKey("EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidAesKey(f"EncodingAESKey is not base64: {exc}") from None
    if len(key) != 32:
        raise InvalidAesKey("EncodingAESKey must decode to 32 bytes")
    return key


class MsgCrypt:
    """Sign, verify, encrypt and decrypt callbacks for one (token, EncodingAESKey, receive id).

    ``millisecond_timestamps`` only changes the default timestamp of :meth:`encrypt`
    (DingTalk uses milliseconds, WeCom seconds); explicit timestamps are used as given.
    """

    def __init__(
        self,
        token: str,
        encoding_aes_key: str,
        receive_id: str,
        *,
        millisecond_timestamps: bool = False,
    ) -> None:
        self.token = token
        self.receive_id = receive_id
        self.millisecond_timestamps = millisecond_timestamps
        self._key = _decode_aes_key(encoding_aes_key)
        self._iv = self._key[:16]

    def signature(self, timestamp: str | int, nonce: str, encrypt: str) -> str:
        """Return the hex SHA1 of the sorted [token, timestamp, nonce, encrypt] concatenation."""
        parts = sorted([self.token, str(timestamp), nonce, encrypt])
        return hashlib.sha1("".join(parts).encode("utf-8")).hexdigest()

    def verify(self, signature: str, timestamp: str | int, nonce: str, encrypt: str) -> None:
        """Raise :class:`InvalidSignature` unless ``signature`` signs (timestamp, nonce, encrypt)."""
        expected = self.signature(timestamp, nonce, encrypt)
        if not hmac.compare_digest(expected, (signature or "").lower()):
            raise InvalidSignature("signature mismatch")

    def encrypt(
        self,
        plaintext: str | bytes,
        nonce: str | None = None,
        timestamp: str | int | None = None,
        *,
        random_prefix: bytes | None = None,
    ) -> EncryptedMessage:
        """Encrypt ``plaintext`` and sign it; nonce, timestamp and the 16-byte prefix default to fresh values."""
        msg = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
        prefix = random_prefix if random_prefix is not None else _random_text(16).encode("ascii")
        if len(prefix) != 16:
            raise ValueError("random_prefix must be 16 bytes")
        body = prefix + struct.pack(">I", len(msg)) + msg + self.receive_id.encode("utf-8")
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).encryptor()
        cipher = encryptor.update(pkcs7_pad(body)) + encryptor.finalize()
        encrypted = base64.b64encode(cipher).decode("ascii")
        if timestamp is None:
            timestamp = int(time.time() * 1000) if self.millisecond_timestamps else int(time.time())
        nonce = nonce if nonce is not None else _random_text(16)
        ts = str(timestamp)
        return EncryptedMessage(encrypted, self.signature(ts, nonce, encrypted), ts, nonce)

    def decrypt(self, encrypted: str) -> str:
        """Decrypt ``encrypted`` and return the message, checking padding, length and receive id."""
        try:
            cipher = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise InvalidCiphertext("ciphertext is not base64") from None
        if not cipher or len(cipher) % 16:
            raise InvalidCiphertext("ciphertext length is not a multiple of the AES block")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._iv)).decryptor()
        body = pkcs7_unpad(decryptor.update(cipher) + decryptor.finalize())
        if len(body) < 20:
            raise InvalidCiphertext("plaintext shorter than its header")
        (length,) = struct.unpack(">I", body[16:20])
        if 20 + length > len(body):
            raise InvalidCiphertext("length header exceeds the plaintext")
        msg, receive_id = body[20 : 20 + length], body[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode("utf-8")):
            raise InvalidReceiveId("message is addressed to another receive id")
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidCiphertext("message is not UTF-8") from None

    def decrypt_verified(self, signature: str, timestamp: str | int, nonce: str, encrypted: str) -> str:
        """Verify the signature, then decrypt: the order the platforms' SDKs use."""
        self.verify(signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)
