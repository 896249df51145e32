"""Numeric precision of a deployment: how its embedding tables are stored and in what type its
dense layers compute.

Embedding tables (``embedding``):

- ``fp32``: the reference; ``fp16`` and ``bf16``: half-width floats, looked up by
  ``torch.embedding_bag`` / ``torch.embedding`` as fp32 tables are;
- ``int8``: row-wise 8-bit, FBGEMM's layout: each row is ``dim`` bytes then a float32 scale
  and a float32 bias (``dim + 8`` bytes); looked up by torch's
  ``quantized::embedding_bag_byte_rowwise_offsets``;
- ``int4``: row-wise 4-bit, two values per byte then a float16 scale and a float16 bias
  (``ceil(dim / 2) + 4`` bytes); ``quantized::embedding_bag_4bit_rowwise_offsets``.

A row-wise quantized row carries its scale and bias: a table of width 1 (Wide & Deep's wide
weights) would grow, not shrink (9 bytes against 4). Such tables keep fp32 rows
(:meth:`Precision.table_precision`): the rule is "quantize a table where it saves bytes",
as a deployment would. int4 packs two values per byte and FBGEMM's kernels take even widths
only; a table of odd width keeps fp32 rows under int4 too.

Dense layers (``dense``): ``fp32``; ``bf16`` (weights and activations in bfloat16, the
model's inputs cast on entry, inside the timed forward: a server receives fp32 features);
``int8``: dynamic quantization of the fully connected layers (weights int8 per output
channel, activations quantized per call), torch's ``quantized::linear_dynamic``. Recurrent
cells (DIEN's GRU) stay fp32 under ``int8``, as torch's dynamic quantization of a model's
linear layers leaves them.

What runs where (:func:`unsupported_reason`): the quantized operators are CPU kernels
(FBGEMM); on CUDA only fp32, fp16 and bf16 run. On the CPU, eager, fused and static run
every precision (Static Runtime runs the quantized embedding and linear operators in its
graphs); compile runs every embedding precision but not dense int8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recstack.errors import SpecError

EMBEDDING_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8", "int4")
DENSE_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "int8")
QUANTIZED: tuple[str, ...] = ("int8", "int4")
REFERENCE = "fp32"
_KEYS = {"emb": "embedding", "embedding": "embedding", "dense": "dense"}
_CPU_ONLY = {"embedding": QUANTIZED, "dense": ("int8",)}
_UNSUPPORTED_ON_BACKEND: dict[str, dict[str, tuple[str, ...]]] = {
    # torch.compile breaks its graph at every dynamically quantized layer (the packed weights
    # are opaque objects) and recompiles that frame per input shape until its limit: what
    # it would time is not a compiled model.
    "compile": {"dense": ("int8",)},
}


def row_bytes(precision: str, dim: int) -> int:
    """Bytes of one stored table row of width ``dim`` (scale and bias included)."""
    if precision == "fp32":
        return 4 * dim
    if precision in ("fp16", "bf16"):
        return 2 * dim
    if precision == "int8":
        return dim + 8
    if precision == "int4":
        return math.ceil(dim / 2) + 4
    raise SpecError("precision.embedding", precision,
                    f"expected one of {', '.join(EMBEDDING_PRECISIONS)}")


DENSE_WEIGHT_BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
"""Bytes per dense weight element. Biases stay fp32 under int8 (and int8 adds one float32
scale per output channel); under bf16 they are bf16."""


@dataclass(frozen=True)
class Precision:
    """The precision of a point's embedding tables and of its dense layers."""

    embedding: str = REFERENCE
    dense: str = REFERENCE

    def __post_init__(self) -> None:
        if self.embedding not in EMBEDDING_PRECISIONS:
            raise SpecError("precision.embedding", self.embedding,
                            f"expected one of {', '.join(EMBEDDING_PRECISIONS)}")
        if self.dense not in DENSE_PRECISIONS:
            raise SpecError("precision.dense", self.dense,
                            f"expected one of {', '.join(DENSE_PRECISIONS)}")

    @classmethod
    def parse(cls, text: str) -> Precision:
        """``emb=int8,dense=bf16`` (either part may be left out: it stays fp32);
        ``fp32`` alone is the reference."""
        allowed = ("expected emb=E,dense=D with E one of "
                   f"{'/'.join(EMBEDDING_PRECISIONS)} and D one of {'/'.join(DENSE_PRECISIONS)}")
        if not isinstance(text, str) or not text.strip():
            raise SpecError("precision", text, allowed)
        if text.strip() == REFERENCE:
            return cls()
        chosen: dict[str, str] = {}
        for part in text.split(","):
            key, equals, value = part.strip().partition("=")
            field = _KEYS.get(key.strip())
            if not equals or field is None or field in chosen:
                raise SpecError("precision", text, allowed)
            chosen[field] = value.strip()
        if chosen.get("embedding", REFERENCE) not in EMBEDDING_PRECISIONS or \
                chosen.get("dense", REFERENCE) not in DENSE_PRECISIONS:
            raise SpecError("precision", text, allowed)
        return cls(**chosen)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Precision:
        if data is None:
            return cls()
        if not isinstance(data, dict) or set(data) - {"embedding", "dense"}:
            raise SpecError("precision", data, "expected {embedding: ..., dense: ...}")
        return cls(**data)

    def to_dict(self) -> dict[str, str]:
        return {"embedding": self.embedding, "dense": self.dense}

    @property
    def is_reference(self) -> bool:
        return self.embedding == REFERENCE and self.dense == REFERENCE

    @property
    def label(self) -> str:
        """``fp32`` for the reference, else ``emb=E,dense=D`` (what ``parse`` reads)."""
        return REFERENCE if self.is_reference else f"emb={self.embedding},dense={self.dense}"

    def table_precision(self, dim: int) -> str:
        """The precision a table of width ``dim`` is stored in: this one, unless a quantized
        row would be no smaller than an fp32 row (see the module's docstring)."""
        if self.embedding in QUANTIZED and row_bytes(self.embedding, dim) >= 4 * dim:
            return REFERENCE
        if self.embedding == "int4" and dim % 2:
            return REFERENCE
        return self.embedding

    def table_row_bytes(self, dim: int) -> int:
        return row_bytes(self.table_precision(dim), dim)

    @property
    def dense_dtype_name(self) -> str:
        """The type dense activations flow in: bfloat16 under bf16, else float32."""
        return "bfloat16" if self.dense == "bf16" else "float32"


FP32 = Precision()


def unsupported_reason(precision: Precision, backend: str, device: str = "cpu") -> str | None:
    """Why ``precision`` cannot run on ``backend`` and ``device``, or None when it can."""
    on_cuda = device.startswith("cuda")
    for field in ("embedding", "dense"):
        value = getattr(precision, field)
        if on_cuda and value in _CPU_ONLY[field]:
            return (f"{field} {value} runs on the CPU only (torch's quantized kernels are "
                    f"FBGEMM's); on {device} use fp32, fp16 or bf16")
        if value in _UNSUPPORTED_ON_BACKEND.get(backend, {}).get(field, ()):
            return (f"{field} {value} does not run on the {backend} backend; "
                    f"use eager, fused or static")
    return None


def check_supported(precision: Precision, backend: str, device: str = "cpu") -> None:
    """Raises SpecError (field ``precision``) when ``precision`` cannot run there."""
    reason = unsupported_reason(precision, backend, device)
    if reason is not None:
        raise SpecError("precision", precision.label, reason)
