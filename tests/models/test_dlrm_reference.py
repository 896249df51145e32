"""DLRM against a straightforward computation on the same weights: a loop over tables and
samples in float64 numpy, nothing shared with the model's code."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from recstack.inputs import QuerySpec, generate_batches
from recstack.models import build_model
from recstack.specs import spec_from_config


def linear_layers(module: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy())
            for m in module.modules() if isinstance(m, nn.Linear)]


def reference_dlrm(model: nn.Module, batch, interaction: str) -> np.ndarray:
    x = batch.dense.double().numpy()
    for weight, bias in linear_layers(model.dense):
        x = np.maximum(x @ weight.T + bias, 0.0)
    pooled_tables = []
    for bag, indices, offsets in zip(model.sparse.bags, batch.bag_indices, batch.bag_offsets):
        table = bag.weight.detach().double().numpy()
        ids, starts = indices.numpy(), offsets.numpy()
        ends = list(starts[1:]) + [len(ids)]
        pooled = np.zeros((batch.size, table.shape[1]))
        for sample in range(batch.size):
            for row in ids[starts[sample]:ends[sample]]:
                pooled[sample] += table[row]
        pooled_tables.append(pooled)
    if interaction == "cat":
        z = np.concatenate([x, *pooled_tables], axis=1)
    else:
        features = [x, *pooled_tables]
        rows = []
        for sample in range(batch.size):
            pairs = [features[i][sample] @ features[j][sample]
                     for i in range(len(features)) for j in range(i)]
            rows.append(np.concatenate([x[sample], pairs]))
        z = np.stack(rows)
    layers = linear_layers(model.over)
    for position, (weight, bias) in enumerate(layers):
        z = z @ weight.T + bias
        if position < len(layers) - 1:
            z = np.maximum(z, 0.0)
    return 1.0 / (1.0 + np.exp(-z))


BASE = {"model_type": "dlrm", "arch_mlp_bot": "13-16-8", "arch_mlp_top": "32-16-1",
        "arch_embedding_size": "50-200-1000", "arch_sparse_feature_size": 8,
        "num_indices_per_lookup": 6}


@pytest.mark.parametrize("interaction", ["cat", "dot"])
@pytest.mark.parametrize("fixed", [True, False])
def test_dlrm_matches_the_reference(interaction: str, fixed: bool) -> None:
    spec = spec_from_config({**BASE, "arch_interaction_op": interaction,
                             "num_indices_per_lookup_fixed": fixed})
    model = build_model(spec, seed=11)
    (batch,) = generate_batches(spec, QuerySpec(seed=5), 16, 1)
    with torch.inference_mode():
        output = model(batch).double().numpy()
    np.testing.assert_allclose(output, reference_dlrm(model, batch, interaction),
                               rtol=1e-5, atol=1e-6)


def test_reference_would_catch_a_wrong_table_order() -> None:
    """The comparison is sharp: swapping two tables' ids changes the output."""
    spec = spec_from_config({**BASE, "arch_embedding_size": "300-300-300"})
    model = build_model(spec, seed=11)
    (batch,) = generate_batches(spec, QuerySpec(seed=5), 16, 1)
    swapped = replace(batch, bag_indices=(batch.bag_indices[1], batch.bag_indices[0],
                                          batch.bag_indices[2]))
    with torch.inference_mode():
        output = model(swapped).double().numpy()
    assert not np.allclose(output, reference_dlrm(model, batch, "cat"), rtol=1e-5, atol=1e-6)
