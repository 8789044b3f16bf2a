"""The shared WXBizMsgCrypt scheme against the official WeCom and DingTalk vectors (reference §10.1)."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sdk.callback_crypto import (
    InvalidAesKey,
    InvalidCiphertext,
    InvalidReceiveId,
    InvalidSignature,
    MsgCrypt,
    pkcs7_pad,
    pkcs7_unpad,
)
from connectors.sdk.triggers import WebhookRejected

WECOM = MsgCrypt("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")

WECOM_ECHOSTR = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
WECOM_ENCRYPT = (
    "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymz"
    "xh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIi"
    "OAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvc"
    "cTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
)
WECOM_REPLY = (
    "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n"
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n"
    "<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
)
WECOM_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtOb"
    "vesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8"
    "NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O"
    "5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)

DING_FAQ = MsgCrypt("123456", "1234567890123456789012345678901234567890123", "dingsnotzck6pm5veliw")
DING_FAQ_ENCRYPT = "YvkvaGe4hQxd3VxRmEty0dVlnCOAqwf56xwTRHDHoOURqhalbmBJQk5FNcRk42Gl5T0YQXZNwpwWSm1xAFJ5ZA=="

DING_REPO = MsgCrypt("mryue", "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "ding6ccabc44d2c8d38b")
DING_REPO_ENCRYPT = (
    "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15NRPvNvmBKyDCYxxOK+HZeKju4yhELOFc"
    "hzNukR+t8SB/qk4ROMu3"
)

DING_SDK = MsgCrypt("123456", "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij", "suite4xxxxxxxxxxxxxxx")
DING_SDK_PLAIN = '{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}'
DING_SDK_ENCRYPT_OUT = (
    "5DJFWzjRNOQk+5GSZxW+VrFMDWCIidPjEjg3//gm5x556BedVi62rDj1F9uXU97a4jw1R4FACUv9RCpoDobNqxhxRB2YtW901k4KHbP1/wpF"
    "J3xdLG0n0A8U1VhENg80zKJd+YROR0YMGum4WYuoXJ6J98vt0ihYeIFoapNddLML5MyNAGM9saSpkouDMSvD+iU14i7V8ix1ia1Tb9ogog=="
)
DING_SDK_ENCRYPT_IN = (
    "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9V"
    "rYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ=="
)


# --- official vectors -----------------------------------------------------------------------


def test_wecom_url_verification_vector() -> None:
    plain = WECOM.decrypt_verified("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", WECOM_ECHOSTR)
    assert plain == "5927782489442352469"


def test_wecom_url_verification_wrong_nonce_fails() -> None:
    with pytest.raises(InvalidSignature):
        WECOM.decrypt_verified("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424", WECOM_ECHOSTR)


def test_wecom_decrypt_vector() -> None:
    xml = WECOM.decrypt_verified("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", WECOM_ENCRYPT)
    for fragment in (
        "<ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>",
        "<FromUserName><![CDATA[messense]]></FromUserName>",
        "<CreateTime>1411525903</CreateTime>",
        "<MsgType><![CDATA[text]]></MsgType>",
        "<Content><![CDATA[test]]></Content>",
        "<MsgId>4363689963896700987</MsgId>",
        "<AgentID>1</AgentID>",
    ):
        assert fragment in xml


def test_wecom_encrypt_vector() -> None:
    out = WECOM.encrypt(WECOM_REPLY, nonce="461056294", timestamp="1411525903", random_prefix=b"1234567890123456")
    assert out.encrypted == WECOM_REPLY_ENCRYPT
    assert out.signature == "407518b7649e86ef23978113f92d27afa9296533"
    assert (out.timestamp, out.nonce) == ("1411525903", "461056294")


def test_dingtalk_faq_vector() -> None:
    plain = DING_FAQ.decrypt_verified(
        "9a95a004dd16f5c307e849b994173f76aa26e5eb", "1614767836", "A7Co0cJLMzIDtMMI", DING_FAQ_ENCRYPT
    )
    assert plain == "success"


def test_dingtalk_crypto_repo_vector() -> None:
    plain = DING_REPO.decrypt_verified(
        "03044561471240d4a14bb09372dfcfd4fd0e40cb", "1608001896814", "WL4PK6yA", DING_REPO_ENCRYPT
    )
    assert plain == '{"EventType":"check_url"}'


def test_dingtalk_sdk_encrypt_vector() -> None:
    out = DING_SDK.encrypt(DING_SDK_PLAIN, nonce="nEXhMP4r", timestamp="1445827045067", random_prefix=b"1234567890123456")
    assert out.encrypted == DING_SDK_ENCRYPT_OUT
    assert out.signature == "bcf6dcefa4ce2dbaf7b0666c7264d46fd9aad4bd"


def test_dingtalk_sdk_decrypt_vector_and_wrong_nonce() -> None:
    sig, ts = "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0", "1445827045067"
    assert DING_SDK.decrypt_verified(sig, ts, "nEXhMP4r", DING_SDK_ENCRYPT_IN) == DING_SDK_PLAIN
    with pytest.raises(InvalidSignature):
        DING_SDK.decrypt_verified(sig, ts, "xxxxx", DING_SDK_ENCRYPT_IN)


# --- tampering ------------------------------------------------------------------------------


def test_wrong_receive_id_is_rejected() -> None:
    other = MsgCrypt("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx_other_corp")
    with pytest.raises(InvalidReceiveId):
        other.decrypt(WECOM_ENCRYPT)


def test_wrong_key_is_rejected() -> None:
    other = MsgCrypt("123456", "A" * 43, "wx49f0ab532d5d035a")
    with pytest.raises((InvalidCiphertext, InvalidReceiveId)):
        other.decrypt(WECOM_ENCRYPT)


def test_wrong_token_signature_is_rejected() -> None:
    other = MsgCrypt("654321", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
    with pytest.raises(InvalidSignature):
        other.verify("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294", WECOM_ENCRYPT)


@pytest.mark.parametrize(
    "ciphertext",
    [
        "",
        "not base64!!",
        WECOM_ENCRYPT[:-24],  # truncated: length no longer a whole number of blocks
        base64.b64encode(base64.b64decode(WECOM_ENCRYPT)[:-32]).decode(),  # block-aligned truncation
        base64.b64encode(base64.b64decode(WECOM_ENCRYPT)[:16]).decode(),
    ],
)
def test_truncated_or_garbled_ciphertext_is_rejected(ciphertext: str) -> None:
    with pytest.raises((InvalidCiphertext, InvalidReceiveId)):
        WECOM.decrypt(ciphertext)


def test_flipped_ciphertext_byte_is_rejected() -> None:
    raw = bytearray(base64.b64decode(DING_FAQ_ENCRYPT))
    raw[-1] ^= 0x01  # corrupts the last block, hence the padding
    with pytest.raises((InvalidCiphertext, InvalidReceiveId)):
        DING_FAQ.decrypt(base64.b64encode(bytes(raw)).decode())


def test_crypto_errors_are_webhook_rejections() -> None:
    with pytest.raises(WebhookRejected):
        WECOM.verify("0" * 40, "1", "2", "3")


@pytest.mark.parametrize("key", ["short", "!" * 43, "A" * 44])
def test_invalid_aes_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidAesKey):
        MsgCrypt("t", key, "r")


def test_pkcs7_rejects_bad_padding() -> None:
    assert pkcs7_unpad(pkcs7_pad(b"x" * 32)) == b"x" * 32
    assert len(pkcs7_pad(b"x" * 32)) == 64
    with pytest.raises(InvalidCiphertext):
        pkcs7_unpad(b"x" * 31 + b"\x00")
    with pytest.raises(InvalidCiphertext):
        pkcs7_unpad(b"x" * 30 + b"\x01\x02")
    with pytest.raises(InvalidCiphertext):
        pkcs7_unpad(b"x" * 31 + b"\x21")


# --- round trips ----------------------------------------------------------------------------

_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=43, max_size=43)


@settings(max_examples=60, deadline=None)
@given(
    key=_keys,
    token=st.text(min_size=1, max_size=32),
    receive_id=st.text(min_size=1, max_size=40),
    message=st.text(max_size=600),
)
def test_round_trip(key: str, token: str, receive_id: str, message: str) -> None:
    crypt = MsgCrypt(token, key, receive_id)
    out = crypt.encrypt(message)
    assert crypt.decrypt_verified(out.signature, out.timestamp, out.nonce, out.encrypted) == message


@settings(max_examples=40, deadline=None)
@given(key=_keys, message=st.text(max_size=200), other=st.text(min_size=1, max_size=20))
def test_round_trip_rejects_other_receive_id(key: str, message: str, other: str) -> None:
    sender = MsgCrypt("tok", key, "ding-app-key")
    out = sender.encrypt(message)
    receiver = MsgCrypt("tok", key, "ding-app-key" + other)
    with pytest.raises(InvalidReceiveId):
        receiver.decrypt(out.encrypted)


def test_default_timestamps_follow_the_platform_unit() -> None:
    assert len(MsgCrypt("t", "A" * 43, "r").encrypt("x").timestamp) == 10
    assert len(MsgCrypt("t", "A" * 43, "r", millisecond_timestamps=True).encrypt("x").timestamp) == 13
