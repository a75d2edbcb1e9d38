"""CATEncoderLayer / CATEncoder: like torch's TransformerEncoder(Layer), with CAT or single-geometry attention."""

from __future__ import annotations

import pytest
import torch

from geoattn.nn import CATEncoder, CATEncoderLayer, CurvatureAdaptiveAttention, ManifoldAttention

B, N, D, H = 2, 5, 8, 2


def _x(dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, N, D, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("attention", ["cat", "euclidean", "hyperbolic", "spherical", "signed"])
def test_every_attention_kind_runs_and_has_the_right_geometry(attention: str) -> None:
    torch.manual_seed(0)
    layer = CATEncoderLayer(D, H, attention=attention)  # type: ignore[arg-type]
    y = layer(_x())
    assert y.shape == (B, N, D) and torch.isfinite(y).all()
    assert layer.dim_feedforward == 4 * D
    if attention == "cat":
        assert isinstance(layer.self_attn, CurvatureAdaptiveAttention)
    else:
        assert isinstance(layer.self_attn, ManifoldAttention)
        k = layer.self_attn.curvature()
        expected = {"euclidean": 0.0, "hyperbolic": -1.0, "spherical": 1.0, "signed": 0.0}[attention]
        torch.testing.assert_close(k, torch.full((H,), expected))
        learnable = any("curvatures" in n for n, _ in layer.named_parameters())
        assert learnable == (attention != "euclidean")


def test_euclidean_dot_product_layer_equals_torch_transformer_encoder_layer() -> None:
    """attention='euclidean' with tangent dot products is nn.TransformerEncoderLayer(norm_first=True)."""
    torch.manual_seed(1)
    ours = CATEncoderLayer(
        D,
        H,
        16,
        dropout=0.0,
        attention="euclidean",
        attention_kwargs={"score": "tangent_dot", "aggregation": "tangent"},
    ).eval()
    theirs = torch.nn.TransformerEncoderLayer(
        D, H, 16, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    ).eval()
    attn = ours.self_attn
    assert isinstance(attn, ManifoldAttention)
    with torch.no_grad():
        theirs.self_attn.in_proj_weight.copy_(
            torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        )
        theirs.self_attn.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        theirs.self_attn.out_proj.load_state_dict(attn.out_proj.state_dict())
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(theirs, name).load_state_dict(getattr(ours, name).state_dict())
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[1, 3:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(N)  # float, -inf above the diagonal
    torch.testing.assert_close(ours(x), theirs(x))
    torch.testing.assert_close(
        ours(x, src_key_padding_mask=pad)[~pad], theirs(x, src_key_padding_mask=pad)[~pad]
    )
    torch.testing.assert_close(ours(x, causal), theirs(x, causal))
    torch.testing.assert_close(ours(x, is_causal=True), theirs(x, causal, is_causal=True))


def test_encoder_stack_routing_and_regulariser() -> None:
    torch.manual_seed(2)
    layer = CATEncoderLayer(D, H, dropout=0.0)
    encoder = CATEncoder(layer, num_layers=3, norm=torch.nn.LayerNorm(D))
    assert len(encoder.layers) == 3
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[0, -2:] = True
    y, routing = encoder(x, src_key_padding_mask=pad, return_routing=True)
    assert y.shape == (B, N, D) and routing.shape == (3, B, N, 3)
    torch.testing.assert_close(routing.sum(-1), torch.ones(3, B, N))
    torch.testing.assert_close(encoder(x, src_key_padding_mask=pad), y)
    loss = y.pow(2).mean() + 0.01 * encoder.routing_regularizer(routing, pad, entropy_weight=0.1)
    loss.backward()
    for p in encoder.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


def test_padding_and_causality_hold_through_the_stack() -> None:
    torch.manual_seed(3)
    encoder = CATEncoder(CATEncoderLayer(D, H), num_layers=2).eval()
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[1, 3:] = True
    x2 = x.clone()
    x2[1, 3:] = 5.0
    torch.testing.assert_close(
        encoder(x2, src_key_padding_mask=pad)[1, :3], encoder(x, src_key_padding_mask=pad)[1, :3]
    )
    x3 = x.clone()
    x3[:, 2:] = -x3[:, 2:]
    torch.testing.assert_close(encoder(x3, is_causal=True)[:, :2], encoder(x, is_causal=True)[:, :2])
    bool_mask = torch.ones(N, N, dtype=torch.bool).triu(1)
    torch.testing.assert_close(encoder(x, bool_mask), encoder(x, is_causal=True))


def test_layers_are_copies_until_reset() -> None:
    torch.manual_seed(4)
    encoder = CATEncoder(CATEncoderLayer(D, H), num_layers=2)
    a, b = (layer.linear1.weight for layer in encoder.layers)  # type: ignore[union-attr]
    assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    encoder.reset_parameters()
    a, b = (layer.linear1.weight for layer in encoder.layers)  # type: ignore[union-attr]
    assert not torch.equal(a, b)


def test_options_dropout_activation_bias_and_attention_kwargs() -> None:
    torch.manual_seed(5)
    layer = CATEncoderLayer(
        D,
        H,
        12,
        dropout=0.3,
        activation="relu",
        bias=False,
        attention_kwargs={"dropout": 0.0, "routing": "top1"},
    )
    assert layer.linear1.out_features == 12 and layer.linear1.bias is None and layer.norm1.bias is None
    attn = layer.self_attn
    assert (
        isinstance(attn, CurvatureAdaptiveAttention) and attn.dropout == 0.0 and attn.router.routing == "top1"
    )
    x = _x()
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    assert not torch.allclose(layer(x), layer(x))
    _, routing = layer(x, return_routing=True)
    assert set(routing.unique().tolist()) <= {0.0, 1.0}


def test_float64_and_compile() -> None:
    torch.manual_seed(6)
    encoder = CATEncoder(CATEncoderLayer(D, H, dropout=0.0), num_layers=2).double()
    x = _x(torch.float64)
    assert encoder(x).dtype == torch.float64
    compiled = torch.compile(encoder, fullgraph=True, backend="eager")
    y, routing = compiled(x, is_causal=True, return_routing=True)
    y_ref, routing_ref = encoder(x, is_causal=True, return_routing=True)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(routing, routing_ref)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="attention must be one of"):
        CATEncoderLayer(D, H, attention="elliptic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="activation must be one of"):
        CATEncoderLayer(D, H, activation="tanh")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dropout"):
        CATEncoderLayer(D, H, dropout=1.0)
    with pytest.raises(ValueError, match="return_routing=True needs attention='cat'"):
        CATEncoderLayer(D, H, attention="hyperbolic")(_x(), return_routing=True)
    with pytest.raises(TypeError, match="must be a CATEncoderLayer"):
        CATEncoder(torch.nn.Linear(D, D), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_layers"):
        CATEncoder(CATEncoderLayer(D, H), 0)
