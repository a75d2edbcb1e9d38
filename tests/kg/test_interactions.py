"""MuRP, RotH, RefH and AttH interactions: PyKEEN's shape conventions, the 1-N pairwise path, geoopt as reference, gradients."""

from __future__ import annotations

from typing import Any

import geoopt
import pytest
import torch
from pykeen.nn.modules import Interaction

from geoattn.kg import AttHInteraction, MuRPInteraction, RefHInteraction, RotHInteraction
from geoattn.kg import interactions as module
from geoattn.kg.interactions import givens_reflection, givens_rotation, is_one_to_many, relation_curvature

INTERACTIONS = [MuRPInteraction, RotHInteraction, RefHInteraction, AttHInteraction]
D = 6
InteractionType = type[Interaction[Any, Any, Any]]


def _relation(
    cls: InteractionType, *batch: int, dtype: torch.dtype, gen: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """Random relation representations following ``relation_shape``: translation, U(-1, 1) transforms, curvature."""
    sizes = {"d": (D,), "e": (D // 2,), "": ()}
    shapes = [sizes[symbol] for symbol in cls.relation_shape]
    return (
        0.3 * torch.randn(*batch, *shapes[0], dtype=dtype, generator=gen),
        *(2.0 * torch.rand(*batch, *shape, dtype=dtype, generator=gen) - 1.0 for shape in shapes[1:-1]),
        0.5 * torch.randn(*batch, dtype=dtype, generator=gen),
    )


def _entity(
    *batch: int, dtype: torch.dtype, gen: torch.Generator, scale: float = 0.3
) -> tuple[torch.Tensor, ...]:
    return (
        scale * torch.randn(*batch, D, dtype=dtype, generator=gen),
        torch.randn(*batch, dtype=dtype, generator=gen),
    )


@pytest.mark.parametrize("cls", INTERACTIONS)
def test_pykeen_shapes(cls: InteractionType) -> None:
    """score_hrt -> (B, 1); score_t/score_h -> (B, N); score_r -> (B, R); arbitrary broadcast in forward."""
    gen = torch.Generator().manual_seed(0)
    interaction = cls()
    kw: dict[str, Any] = dict(dtype=torch.float32, gen=gen)
    b, n, nr = 5, 7, 3
    h, t, r = _entity(b, **kw), _entity(b, **kw), _relation(cls, b, **kw)
    assert interaction.score_hrt(h=h, r=r, t=t).shape == (b, 1)
    assert interaction.score_t(h=h, r=r, all_entities=_entity(n, **kw)).shape == (b, n)
    assert interaction.score_h(all_entities=_entity(n, **kw), r=r, t=t).shape == (b, n)
    assert interaction.score_r(h=h, all_relations=_relation(cls, nr, **kw), t=t).shape == (b, nr)
    # general broadcasting: (2, 1, 4) x (1, 3, 1) x (2, 3, 4)
    out = interaction(h=_entity(2, 1, 4, **kw), r=_relation(cls, 1, 3, 1, **kw), t=_entity(2, 3, 4, **kw))
    assert out.shape == (2, 3, 4)
    # slicing along the tails gives the same scores
    all_t = _entity(n, **kw)
    full = interaction.score_t(h=h, r=r, all_entities=all_t)
    sliced = interaction.score_t(h=h, r=r, all_entities=all_t, slice_size=3)
    torch.testing.assert_close(sliced, full)
    assert interaction.entity_shape == ("d", "", "")
    assert interaction.relation_shape[0] == "d"
    assert interaction.relation_shape[-1] == ""  # the raw curvature


@pytest.mark.parametrize("cls", INTERACTIONS)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_one_to_many_equals_broadcast(cls: InteractionType, dtype: torch.dtype, tol: float) -> None:
    """The pairwise 1-N path (score_t's shapes) equals the elementwise broadcast on the expanded tails."""
    gen = torch.Generator().manual_seed(1)
    interaction = cls()
    b, n = 4, 9
    h = tuple(
        x.unsqueeze(1).requires_grad_(True) for x in _entity(b, dtype=dtype, gen=gen)
    )  # (B, 1, d), (B, 1)
    r = tuple(x.unsqueeze(1).requires_grad_(True) for x in _relation(cls, b, dtype=dtype, gen=gen))
    t = tuple(
        x.unsqueeze(0).requires_grad_(True) for x in _entity(n, dtype=dtype, gen=gen, scale=0.5)
    )  # (1, N, d), (1, N)
    t_expanded = tuple(x.expand(b, *x.shape[1:]).contiguous() for x in t)  # (B, N, d): the broadcast path
    assert is_one_to_many(h[0], t[0])
    assert not is_one_to_many(h[0], t_expanded[0])
    fast = interaction(h=h, r=r, t=t)
    slow = interaction(h=h, r=r, t=t_expanded)
    assert fast.shape == slow.shape == (b, n)
    torch.testing.assert_close(fast, slow, rtol=tol, atol=tol)
    # every gradient (entities, relation parameters and curvature) agrees as well
    weights = torch.randn(b, n, dtype=dtype, generator=gen)
    leaves = [*h, *r, *t]
    grads_fast = torch.autograd.grad((weights * fast).sum(), leaves)
    grads_slow = torch.autograd.grad((weights * slow).sum(), leaves)
    for g_fast, g_slow in zip(grads_fast, grads_slow, strict=True):
        torch.testing.assert_close(g_fast, g_slow, rtol=10 * tol, atol=10 * tol)
    fast, slow = fast.detach(), slow.detach()
    # 1-N without leading dimensions: q (1, d) against t (N, d) gives (N,), as broadcasting does
    single = interaction(h=tuple(x[0] for x in h), r=tuple(x[0] for x in r), t=tuple(x[0] for x in t))
    torch.testing.assert_close(single, slow[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", INTERACTIONS)
def test_one_to_many_builds_no_broadcast(cls: InteractionType, monkeypatch: pytest.MonkeyPatch) -> None:
    """score_t never reaches the elementwise distance (which would form (B, N, d))."""

    def forbidden(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("elementwise sqdist called on the 1-N path")

    gen = torch.Generator().manual_seed(2)
    kw: dict[str, Any] = dict(dtype=torch.float32, gen=gen)
    h, r, all_t = _entity(3, **kw), _relation(cls, 3, **kw), _entity(11, **kw)
    expected = cls().score_t(h=h, r=r, all_entities=all_t)
    monkeypatch.setattr(module, "sqdist", forbidden)
    torch.testing.assert_close(cls().score_t(h=h, r=r, all_entities=all_t), expected)


def _givens_matrix(angles: torch.Tensor, reflect: bool) -> torch.Tensor:
    """Block-diagonal rotation [[c, -s], [s, c]] or reflection [[c, s], [s, -c]] blocks."""
    sign = -1.0 if reflect else 1.0
    blocks = [
        torch.stack([torch.stack([a.cos(), -sign * a.sin()]), torch.stack([a.sin(), sign * a.cos()])])
        for a in angles
    ]
    return torch.block_diag(*blocks)


def _geoopt_score(
    cls: InteractionType,
    h: tuple[torch.Tensor, ...],
    r: tuple[torch.Tensor, ...],
    t: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """Scores of aligned 1-D batches, one geoopt PoincareBall per triple (c = softplus(raw))."""
    scores = []
    for i in range(h[0].shape[0]):
        ball = geoopt.PoincareBall(c=torch.nn.functional.softplus(r[-1][i]))
        e_h = h[0][i]
        if cls is MuRPInteraction:
            head = ball.expmap0(r[1][i] * e_h)
        elif cls is AttHInteraction:
            q_rot = _givens_matrix(r[1][i], reflect=False) @ e_h
            q_ref = _givens_matrix(r[2][i], reflect=True) @ e_h
            logits = torch.stack([r[3][i] @ q_rot, r[3][i] @ q_ref]) / D**0.5
            alpha = logits.exp() / logits.exp().sum()
            head = ball.expmap0(alpha[0] * q_rot + alpha[1] * q_ref)
        else:
            head = ball.expmap0(_givens_matrix(r[1][i], reflect=cls is RefHInteraction) @ e_h)
        q = ball.mobius_add(head, ball.expmap0(r[0][i]))
        scores.append(-(ball.dist(q, ball.expmap0(t[0][i])) ** 2) + h[1][i] + t[1][i])
    return torch.stack(scores)


@pytest.mark.parametrize("cls", INTERACTIONS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_geoopt(cls: InteractionType, seed: int) -> None:
    """Scores equal an independent computation with geoopt's PoincareBall (float64), on both paths."""
    gen = torch.Generator().manual_seed(seed)
    kw: dict[str, Any] = dict(dtype=torch.float64, gen=gen)
    b, n = 5, 6
    h, r, t = _entity(b, **kw), _relation(cls, b, **kw), _entity(b, **kw, scale=0.5)
    interaction = cls()
    torch.testing.assert_close(interaction.score_hrt(h=h, r=r, t=t)[:, 0], _geoopt_score(cls, h, r, t))
    all_t = _entity(n, **kw)
    scores = interaction.score_t(h=h, r=r, all_entities=all_t)
    for j in range(n):
        tj = tuple(x[j].expand(b, *x.shape[1:]) for x in all_t)
        torch.testing.assert_close(scores[:, j], _geoopt_score(cls, h, r, tj), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("cls", INTERACTIONS)
@pytest.mark.parametrize("one_to_many", [False, True])
def test_curvature_gets_gradients(cls: InteractionType, one_to_many: bool) -> None:
    gen = torch.Generator().manual_seed(3)
    kw: dict[str, Any] = dict(dtype=torch.float32, gen=gen)
    h, r = _entity(4, **kw), _relation(cls, 4, **kw)
    raw_c = r[-1].clone().requires_grad_(True)
    r = (*r[:-1], raw_c)
    interaction = cls()
    if one_to_many:
        out = interaction.score_t(h=h, r=r, all_entities=_entity(5, **kw))
    else:
        out = interaction.score_hrt(h=h, r=r, t=_entity(4, **kw))
    out.sum().backward()
    assert raw_c.grad is not None
    assert torch.isfinite(raw_c.grad).all()
    assert (raw_c.grad.abs() > 0).all()


@pytest.mark.parametrize("cls", INTERACTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm", [10.0, 40.0])
def test_finite_near_boundary(cls: InteractionType, dtype: torch.dtype, norm: float) -> None:
    """Tangent vectors so long that exp_0 lands on the boundary in floating point: finite scores and gradients."""
    gen = torch.Generator().manual_seed(4)
    kw: dict[str, Any] = dict(dtype=dtype, gen=gen)
    b, n = 3, 4
    h_emb, h_bias = _entity(b, **kw)
    t_emb, t_bias = _entity(n, **kw)
    r_vec, *r_other, r_c = _relation(cls, b, **kw)
    leaves = [
        (norm * h_emb / h_emb.norm(dim=-1, keepdim=True)).requires_grad_(True),
        (norm * t_emb / t_emb.norm(dim=-1, keepdim=True)).requires_grad_(True),
        (norm * r_vec / r_vec.norm(dim=-1, keepdim=True)).requires_grad_(True),
        r_c.requires_grad_(True),
    ]
    h, t, r = (leaves[0], h_bias), (leaves[1], t_bias), (leaves[2], *r_other, leaves[3])
    interaction = cls()
    for scores in (
        interaction.score_t(h=h, r=r, all_entities=t),
        interaction.score_hrt(h=h, r=r, t=tuple(x[:b] for x in t)),
    ):
        assert torch.isfinite(scores).all()
        grads = torch.autograd.grad(scores.sum(), leaves, allow_unused=True)
        assert all(g is None or torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("reflect", [False, True])
def test_givens_maps(reflect: bool) -> None:
    """Rotations and reflections preserve norms and equal their block-diagonal matrices; reflections are involutions."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, D, dtype=torch.float64, generator=gen)
    angles = torch.randn(3, D // 2, dtype=torch.float64, generator=gen)
    transform = givens_reflection if reflect else givens_rotation
    y = transform(angles, x)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    for i in range(3):
        torch.testing.assert_close(y[i], _givens_matrix(angles[i], reflect) @ x[i])
    if reflect:
        torch.testing.assert_close(transform(angles, y), x)


def test_every_interaction_is_tested() -> None:
    """Each interaction geoattn.kg exports runs through the tests above."""
    exported = {getattr(module, name) for name in module.__all__ if name.endswith("Interaction")}
    assert exported == set(INTERACTIONS)


def test_relation_curvature_negative() -> None:
    raw = torch.linspace(-30.0, 30.0, 7)
    k = relation_curvature(raw)
    assert (k < 0).all()
    torch.testing.assert_close(-k, torch.nn.functional.softplus(raw))
