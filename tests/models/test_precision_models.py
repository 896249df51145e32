"""Models in every precision: built directly in it, the values of fp32's tables rounded or
quantized, and predictions within a stated distance of fp32's.

Tolerance: predictions are probabilities; every reduced precision stays within 0.03 of
fp32's on every sample of a batch of 64 at the small test scale (the worst measured was
int4 tables with dense int8, about 0.007), and fp16 tables with fp32 layers within 1e-3."""

from __future__ import annotations

import pytest
import torch

from recstack.footprint import FILL_CHUNK_ELEMENTS, footprint
from recstack.models import build_model, embeddings
from recstack.models.embeddings import random_table
from recstack.precision import DENSE_PRECISIONS, EMBEDDING_PRECISIONS, Precision
from recstack.specs import ZOO_NAMES
from tests.conftest import one_batch, small_spec

TOLERANCE = 0.03
PRECISIONS = [Precision(e, d) for e in EMBEDDING_PRECISIONS for d in DENSE_PRECISIONS
              if (e, d) != ("fp32", "fp32")]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_model_in_every_precision_stays_near_fp32(name: str) -> None:
    spec = small_spec(name)
    batch = one_batch(spec, batch_size=64)
    with torch.inference_mode():
        reference = build_model(spec, seed=3)(batch)
        for precision in PRECISIONS:
            output = build_model(spec, seed=3, precision=precision)(batch)
            assert output.shape == reference.shape, precision.label
            deviation = (output.float() - reference).abs().max().item()
            assert deviation <= TOLERANCE, (precision.label, deviation)
            if precision == Precision("fp16"):
                assert deviation <= 1e-3


@pytest.mark.parametrize("name", ["rmc2", "wnd", "dien"])
@pytest.mark.parametrize("precision", [Precision("int8", "bf16"), Precision("int4", "int8"),
                                       Precision("fp16")], ids=lambda p: p.label)
def test_the_fused_layout_gives_the_eager_outputs_in_any_precision(name: str,
                                                                    precision: Precision) -> None:
    spec = small_spec(name)
    batch = one_batch(spec, batch_size=16)
    with torch.inference_mode():
        eager = build_model(spec, seed=1, precision=precision)(batch)
        fused = build_model(spec, seed=1, precision=precision, fused=True)(batch)
    assert torch.allclose(eager.float(), fused.float(), atol=1e-6)


@pytest.mark.parametrize("dim", [16, 6, 5])
def test_reduced_tables_hold_the_fp32_values_converted(monkeypatch: pytest.MonkeyPatch,
                                                        dim: int) -> None:
    """Chunk boundaries inside rows (a chunk of 1000 values, rows of 6 or 5) and several
    fill threads: each converted row is exactly the fp32 row converted."""
    monkeypatch.setattr(embeddings, "CHUNK_ELEMENTS", 1000)
    rows = 701
    fp32 = random_table(rows, dim, seed=4, table_index=2)
    assert torch.equal(random_table(rows, dim, 4, 2, "fp16"), fp32.half())
    assert torch.equal(random_table(rows, dim, 4, 2, "bf16"), fp32.bfloat16())
    assert torch.equal(random_table(rows, dim, 4, 2, "int8"),
                       torch.ops.quantized.embedding_bag_byte_prepack(fp32))
    if dim % 2 == 0:
        assert torch.equal(random_table(rows, dim, 4, 2, "int4"),
                           torch.ops.quantized.embedding_bag_4bit_prepack(fp32, False))


def test_the_chunk_used_in_tests_is_smaller_than_the_real_one() -> None:
    assert embeddings.CHUNK_ELEMENTS == FILL_CHUNK_ELEMENTS > 1000


def test_int8_and_int4_footprints_match_a_hand_count() -> None:
    """RMC1 at the test scale: 8 tables of width 32 (rows after scaling from the spec); a
    row of int8 is 32 values + 4-byte scale + 4-byte bias, of int4 16 bytes + 2 + 2."""
    spec = small_spec("rmc1")
    rows = sum(spec.rows)
    lookups = spec.num_tables * spec.pooling_factor
    assert spec.embedding_dim == 32
    int8 = footprint(spec, Precision("int8"))
    int4 = footprint(spec, Precision("int4"))
    assert int8.embedding_bytes == rows * 40
    assert int4.embedding_bytes == rows * 20
    assert footprint(spec).embedding_bytes == rows * 128
    assert int8.gathered_bytes_per_sample == lookups * 40
    assert int4.gathered_bytes_per_sample == lookups * 20
    assert int8.parameters == footprint(spec).parameters  # counts do not change


def test_the_built_tables_take_the_footprint_bytes() -> None:
    for name in ("rmc1", "wnd", "din"):
        spec = small_spec(name)
        for precision in (Precision("int8"), Precision("int4"), Precision("bf16")):
            model = build_model(spec, precision=precision)
            stored = sum(weight.numel() * weight.element_size()
                         for part in ("sparse", "wide_sparse", "behaviours")
                         if part in model._modules
                         for weight in model._modules[part].table_weights())
            assert stored == footprint(spec, precision).embedding_bytes, (name, precision)


def test_wide_tables_of_width_one_stay_fp32_under_int8() -> None:
    model = build_model(small_spec("wnd"), precision=Precision("int8"))
    assert model.sparse.stored_precision == "int8"
    assert model.wide_sparse.stored_precision == "fp32"


def test_dense_int8_layers_are_dynamically_quantized_and_bf16_layers_are_bf16() -> None:
    from recstack.models.layers import DynamicInt8Linear

    spec = small_spec("rmc1")
    quantized = build_model(spec, precision=Precision("fp32", "int8"))
    layers = [m for m in quantized.modules() if isinstance(m, DynamicInt8Linear)]
    assert len(layers) == len(spec.bottom_mlp) - 1 + len(spec.top_mlp)
    assert not any(isinstance(m, torch.nn.Linear) for m in quantized.modules())
    halved = build_model(spec, precision=Precision("fp32", "bf16"))
    assert halved.over[0].weight.dtype == torch.bfloat16
    assert halved.sparse.table_weights()[0].dtype == torch.float32


@pytest.mark.parametrize("name", ["rmc1", "din"])
def test_static_runtime_runs_quantized_tables_and_layers(name: str) -> None:
    """Static Runtime's graphs call the quantized embedding and linear operators: the same
    predictions as the eager model of the same precision."""
    from recstack.backends import build_for_backend, prepare_backend
    from recstack.static_runtime import unavailable_reason

    if unavailable_reason("cpu") is not None:
        pytest.skip(unavailable_reason("cpu"))
    spec = small_spec(name)
    precision = Precision("int8", "int8")
    batch = one_batch(spec, batch_size=8)
    static = build_for_backend(spec, "static", seed=2, precision=precision)
    prepare_backend(static, "static", [batch])
    with torch.inference_mode():
        expected = build_model(spec, seed=2, precision=precision)(batch)
        assert torch.allclose(static(batch), expected, atol=1e-5)
