"""The CRC32C of two byte runs joined, from their two CRCs and the second run's length.

The client keeps one CRC32C per block of a file (from its single pass over it); a tus
``PATCH`` that spans several blocks declares the CRC32C of all of them, which this gives
without reading the bytes again. Neither ``crc32c`` nor ``google-crc32c`` offers it. The
method is zlib's ``crc32_combine``: a CRC is a remainder of polynomials over GF(2), so
appending ``n`` bytes to ``A`` multiplies ``crc(A)`` by ``x^(8n)`` modulo the CRC's
polynomial, and ``crc(A + B) = crc(A) * x^(8n) + crc(B)`` (``+`` being XOR). The pre- and
post-conditioning (``0xFFFFFFFF``) cancel out in that sum, as they do for zlib's CRC-32.
``x^(8n)`` is a product of the powers ``x^(2^k)``, so a combine costs ``log2(n)`` products.
"""

from __future__ import annotations

_POLY = 0x82F63B78  # Castagnoli's polynomial, bit-reversed: the bit for x^0 is bit 31
_ONE = 1 << 31  # the polynomial 1 (x^0)


def _multiply(a: int, b: int) -> int:
    """``a * b`` modulo the polynomial, both bit-reversed."""
    product = 0
    mask = _ONE
    while mask and a:
        if a & mask:
            product ^= b
            a ^= mask
        mask >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _powers() -> tuple[int, ...]:
    """``x^(2^k)`` modulo the polynomial, for k = 0..66: enough for any 64-bit length."""
    table = [_ONE >> 1]  # x^1
    for _ in range(66):
        table.append(_multiply(table[-1], table[-1]))
    return tuple(table)


_X_TO_2K = _powers()


def _x_to_8n(length: int) -> int:
    """``x^(8 * length)`` modulo the polynomial."""
    power, k = _ONE, 3  # 8 = 2^3
    while length:
        if length & 1:
            power = _multiply(_X_TO_2K[k], power)
        length >>= 1
        k += 1
    return power


def crc32c_combine(first: int, second: int, second_length: int) -> int:
    """The CRC32C of ``A + B`` given ``crc32c(A)``, ``crc32c(B)`` and ``len(B)``."""
    if not 0 <= second_length < 1 << 64:
        raise ValueError(f"a length must be between 0 and 2^64 - 1, not {second_length}")
    return _multiply(_x_to_8n(second_length), first) ^ second
